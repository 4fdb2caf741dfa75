#!/usr/bin/env bash
# Debian packages the tests use: a real IMAP server, poppler's pdfsig, Chromium, OCR,
# NSS tools for signature checks, SoftHSM2 for PKCS#11, Pango and HarfBuzz for weasyprint
# (PDF exports). Installed when missing (as root).
set -euo pipefail
packages=(dovecot-imapd poppler-utils chromium tesseract-ocr tesseract-ocr-fra libnss3-tools qpdf softhsm2
          opensc fonts-dejavu-core
          libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "Missing Debian packages (install them as root): ${missing[*]}" >&2
  exit 1
fi
echo "Installing Debian packages: ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
