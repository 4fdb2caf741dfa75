"""Real signing infrastructure for the parapheur tests, built in the test run.

- a test PKI made with ``cryptography`` (root CA, signers, the server seal, a TSA);
- a local HTTP server: an RFC 3161 time-stamping authority (pyHanko's test timestamper,
  answering real requests over HTTP) and the CA's certificate revocation list;
- an NSS database trusting only the test CA, for poppler's ``pdfsig``;
- a SoftHSM2 token holding a signer's key, for PKCS#11.

Nothing here is committed key material: every key is generated when the tests start.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from asn1crypto import keys as asn1_keys
from asn1crypto import tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PKCS12_PASSWORD = "mot-de-passe-du-p12"
TOKEN_PIN = "1234"
SOFTHSM_MODULE = next(
    (
        p
        for p in (
            "/usr/lib/softhsm/libsofthsm2.so",
            "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        )
        if Path(p).exists()
    ),
    "/usr/lib/softhsm/libsofthsm2.so",
)


def _name(common_name: str, email: str | None = None) -> x509.Name:
    parts = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Département de test"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ]
    if email:
        parts.append(x509.NameAttribute(NameOID.EMAIL_ADDRESS, email))
    return x509.Name(parts)


def _usage(**flags) -> x509.KeyUsage:
    names = (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    )
    return x509.KeyUsage(**{n: flags.get(n, False) for n in names})


@dataclass
class Identity:
    """A certificate and its key, as a signer would receive them."""

    certificate: x509.Certificate
    key: rsa.RSAPrivateKey
    chain: list[x509.Certificate] = field(default_factory=list)

    def pkcs12(self, password: str = PKCS12_PASSWORD) -> bytes:
        encryption = (
            serialization.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(2000)
            .key_cert_algorithm(serialization.pkcs12.PBES.PBESv2SHA256AndAES256CBC)
            .hmac_hash(hashes.SHA256())
            .build(password.encode())
        )
        return serialization.pkcs12.serialize_key_and_certificates(
            b"signer", self.key, self.certificate, self.chain, encryption
        )

    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


class TestPKI:
    """A root CA that issues signer, seal and TSA certificates, and publishes a CRL."""

    __test__ = False

    def __init__(self, crl_url: str | None = None):
        self.crl_url = crl_url
        self.now = datetime.now(UTC)
        self.ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ca = (
            x509.CertificateBuilder()
            .subject_name(_name("Autorité de test Missive"))
            .issuer_name(_name("Autorité de test Missive"))
            .public_key(self.ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now - timedelta(days=2))
            .not_valid_after(self.now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_usage(key_cert_sign=True, crl_sign=True), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.ca_key.public_key()), critical=False
            )
            .sign(self.ca_key, hashes.SHA256())
        )
        self.revoked: list[int] = []

    def issue(
        self,
        common_name: str,
        email: str | None = None,
        *,
        tsa: bool = False,
        days: int = 365,
        not_before: datetime | None = None,
        usage: x509.KeyUsage | None = None,
    ) -> Identity:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        start = not_before or self.now - timedelta(days=1)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name, email))
            .issuer_name(self.ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()),
                critical=False,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
        )
        if tsa:
            builder = builder.add_extension(
                _usage(digital_signature=True), critical=True
            ).add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True
            )
        else:
            builder = builder.add_extension(
                usage or _usage(digital_signature=True, content_commitment=True), critical=True
            )
        if self.crl_url:
            builder = builder.add_extension(
                x509.CRLDistributionPoints(
                    [
                        x509.DistributionPoint(
                            full_name=[x509.UniformResourceIdentifier(self.crl_url)],
                            relative_name=None,
                            reasons=None,
                            crl_issuer=None,
                        )
                    ]
                ),
                critical=False,
            )
        return Identity(builder.sign(self.ca_key, hashes.SHA256()), key, [self.ca])

    def crl(self) -> bytes:
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.ca.subject)
            .last_update(datetime.now(UTC) - timedelta(minutes=5))
            .next_update(datetime.now(UTC) + timedelta(days=7))
            .add_extension(x509.CRLNumber(1), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()),
                critical=False,
            )
        )
        for serial in self.revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(datetime.now(UTC) - timedelta(minutes=1))
                .build()
            )
        return builder.sign(self.ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def ca_pem(self) -> bytes:
        return self.ca.public_bytes(serialization.Encoding.PEM)


class LocalAuthority:
    """An HTTP server on 127.0.0.1: ``POST /tsa`` (RFC 3161) and ``GET /ca.crl``."""

    def __init__(self):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.pki: TestPKI | None = None
        self.timestamper = None
        self.requests = 0
        self.paths: list[str] = []  # every path asked for, to prove what was (not) fetched
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self, pki: TestPKI, tsa: Identity) -> None:
        from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper

        self.pki = pki
        self.timestamper = DummyTimeStamper(
            tsa_cert=asn1_x509.Certificate.load(
                tsa.certificate.public_bytes(serialization.Encoding.DER)
            ),
            tsa_key=asn1_keys.PrivateKeyInfo.load(
                tsa.key.private_bytes(
                    serialization.Encoding.DER,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            ),
            certs_to_embed=[
                asn1_x509.Certificate.load(pki.ca.public_bytes(serialization.Encoding.DER))
            ],
        )
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        authority = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                authority.paths.append(self.path)
                if self.path != "/ca.crl":
                    self.send_error(404)
                    return
                body = authority.pki.crl()
                self.send_response(200)
                self.send_header("Content-Type", "application/pkix-crl")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                if (
                    self.path != "/tsa"
                    or self.headers.get("Content-Type") != "application/timestamp-query"
                ):
                    self.send_error(400)
                    return
                request = tsp.TimeStampReq.load(
                    self.rfile.read(int(self.headers["Content-Length"]))
                )
                body = authority.timestamper.request_tsa_response(request).dump()
                authority.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


@dataclass
class Infrastructure:
    pki: TestPKI
    authority: LocalAuthority
    ca_file: Path
    nssdb: Path
    workdir: Path
    people: dict[str, Identity] = field(default_factory=dict)

    @property
    def tsa_url(self) -> str:
        return self.authority.base + "/tsa"

    def identity(self, key: str, common_name: str | None = None, **options) -> Identity:
        """A certificate for someone (made once per test session)."""
        if key not in self.people:
            self.people[key] = self.pki.issue(common_name or key, **options)
        return self.people[key]


@pytest.fixture(scope="session")
def signing_infrastructure(tmp_path_factory):
    """The test PKI, its local TSA and CRL server, and an NSS db trusting only its CA."""
    workdir = tmp_path_factory.mktemp("parapheur-pki")
    authority = LocalAuthority()
    pki = TestPKI(crl_url=authority.base + "/ca.crl")
    authority.start(pki, pki.issue("Horodatage de test Missive", tsa=True, days=3650))
    ca_file = workdir / "ca.pem"
    ca_file.write_bytes(pki.ca_pem())
    nssdb = workdir / "nssdb"
    nssdb.mkdir()
    subprocess.run(
        ["certutil", "-N", "-d", f"sql:{nssdb}", "--empty-password"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            "certutil",
            "-A",
            "-d",
            f"sql:{nssdb}",
            "-n",
            "Autorite de test",
            "-t",
            "CT,C,C",
            "-i",
            str(ca_file),
        ],
        check=True,
        capture_output=True,
    )
    yield Infrastructure(pki, authority, ca_file, nssdb, workdir)
    authority.stop()


@pytest.fixture
def signing_app(app, signing_infrastructure):
    """The application trusting the test CA, with the shipped parapheur circuits deployed."""
    from app.core.extensions import db
    from app.engine.services import deploy

    app.config.update(
        MISSIVE_TRUST_ROOTS=str(signing_infrastructure.ca_file),
        MISSIVE_TSA_URL=None,
        MISSIVE_PADES_LEVEL="",
    )
    with app.app_context():
        deploy(shipped_processes(), actor=None)
        db.session.remove()
    yield app
    app.config.update(MISSIVE_TRUST_ROOTS="", MISSIVE_TSA_URL=None, MISSIVE_PADES_LEVEL="")


_SHIPPED: list[tuple[str, bytes]] = []


def shipped_processes() -> list[tuple[str, bytes]]:
    """The BPMN/DMN files of processes/ (read once)."""
    if not _SHIPPED:
        root = Path(__file__).resolve().parents[1] / "processes"
        _SHIPPED.extend((p.name, p.read_bytes()) for p in sorted(root.glob("parapheur*")))
    return list(_SHIPPED)


@pytest.fixture(scope="session")
def softhsm_token(tmp_path_factory):
    """A SoftHSM2 token (label ``missive-test``, PIN 1234) in a private directory."""
    if shutil.which("softhsm2-util") is None:
        pytest.fail("softhsm2 is required (scripts/system-deps.sh installs it)")
    workdir = tmp_path_factory.mktemp("softhsm")
    (workdir / "tokens").mkdir()
    conf = workdir / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {workdir / 'tokens'}\nobjectstore.backend = file\n"
        "log.level = ERROR\nslots.removable = false\n"
    )
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            "missive-test",
            "--pin",
            TOKEN_PIN,
            "--so-pin",
            "87654321",
        ],
        check=True,
        capture_output=True,
    )

    imported: set[str] = set()

    def put_key(identity: Identity, label: str, key_id: str) -> None:
        """Store a key on the token once per session (tests run on each database)."""
        if label in imported:
            return
        imported.add(label)
        key_file = workdir / f"{label}.pem"
        key_file.write_bytes(identity.key_pem())
        subprocess.run(
            [
                "softhsm2-util",
                "--import",
                str(key_file),
                "--token",
                "missive-test",
                "--label",
                label,
                "--id",
                key_id,
                "--pin",
                TOKEN_PIN,
            ],
            check=True,
            capture_output=True,
        )
        key_file.unlink()

    return put_key


# --- PDFs --------------------------------------------------------------------------------


def make_pdf(
    pages: int = 1, text: str = "Objet : réponse à votre demande", placeholder: bool = False
) -> bytes:
    """A small, plain PDF (Helvetica, uncompressed) with one line of text per page; the
    last page prints ``[[signature]]`` when asked."""
    objects: list[bytes] = []
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(pages))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode())
    font_ref = 3 + 2 * pages
    for index in range(pages):
        lines = [f"BT /F1 12 Tf 72 760 Td ({_pdf_text(text)} - page {index + 1}) Tj ET"]
        for row in range(30):
            lines.append(
                f"BT /F1 10 Tf 72 {720 - row * 20} Td "
                f"(Ligne {row + 1} du courrier de test, page {index + 1}.) Tj ET"
            )
        if placeholder and index == pages - 1:
            lines.append("BT /F1 10 Tf 330 150 Td ([[signature]]) Tj ET")
        stream = "\n".join(lines).encode("latin-1")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
            f"/Resources << /Font << /F1 {font_ref} 0 R >> >> "
            f"/Contents {4 + 2 * index} 0 R >>".encode()
        )
        objects.append(
            b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream"
        )
    objects.append(
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    )
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return out.getvalue()


def _pdf_text(text: str) -> str:
    return (
        text.encode("cp1252", "replace")
        .decode("latin-1")
        .replace("\\", "\\\\")
        .replace("(", "\\(")
        .replace(")", "\\)")
    )


# --- independent checks ------------------------------------------------------------------


@dataclass
class PdfsigSignature:
    field: str
    lines: list[str]

    @property
    def valid(self) -> bool:
        return "Signature Validation: Signature is Valid." in self.lines

    @property
    def trusted(self) -> bool:
        return "Certificate Validation: Certificate is Trusted." in self.lines

    @property
    def whole_document(self) -> bool:
        return "Total document signed" in self.lines

    def value(self, label: str) -> str | None:
        prefix = f"{label}: "
        return next((line[len(prefix) :] for line in self.lines if line.startswith(prefix)), None)


def pdfsig(data: bytes, nssdb: Path, workdir: Path) -> list[PdfsigSignature]:
    """Run poppler's pdfsig (NSS, trusting only the test CA) and parse every signature."""
    path = workdir / f"check-{os.getpid()}-{threading.get_ident()}.pdf"
    path.write_bytes(data)
    # No "-no-ocsp": with it, poppler 22.12 reports "Unknown issue with Certificate" for
    # every signature; the test certificates carry no OCSP address anyway.
    result = subprocess.run(
        ["pdfsig", "-nssdir", f"sql:{nssdb}", str(path)], capture_output=True, text=True, timeout=60
    )
    path.unlink()
    signatures: list[PdfsigSignature] = []
    for raw in result.stdout.splitlines():
        line = raw.strip().removeprefix("- ")
        if line.startswith("Signature #"):
            signatures.append(PdfsigSignature("", []))
        elif signatures and line:
            signatures[-1].lines.append(line)
            if line.startswith("Signature Field Name: "):
                signatures[-1].field = line.split(": ", 1)[1]
    return signatures


def stamp_texts(data: bytes) -> dict[str, str]:
    """The text drawn in each signature field's visible stamp, by field name."""
    import re

    from pyhanko.pdf_utils.reader import PdfFileReader

    def unescape(raw: bytes) -> str:
        out = bytearray()
        i = 0
        while i < len(raw):
            if raw[i : i + 1] == b"\\":
                octal = re.match(rb"\\([0-7]{1,3})", raw[i:])
                if octal:
                    out.append(int(octal.group(1), 8))
                    i += len(octal.group(0))
                    continue
                out.extend(
                    {b"n": b"\n", b"r": b"\r", b"t": b"\t"}.get(
                        raw[i + 1 : i + 2], raw[i + 1 : i + 2]
                    )
                )
                i += 2
            else:
                out.append(raw[i])
                i += 1
        return out.decode("cp1252")

    def texts(stream) -> list[str]:
        found = [
            unescape(m.group(1)) for m in re.finditer(rb"\(((?:\\.|[^\\)])*)\)\s*Tj", stream.data)
        ]
        resources = stream.get("/Resources")
        xobjects = resources.get_object().get("/XObject") if resources else None
        for ref in xobjects.get_object().values() if xobjects else []:
            found.extend(texts(ref.get_object()))
        return found

    reader = PdfFileReader(io.BytesIO(data), strict=False)
    result = {}
    for field_ref in reader.root["/AcroForm"]["/Fields"]:
        field_obj = field_ref.get_object()
        appearance = field_obj.get("/AP")
        if appearance is not None:
            result[str(field_obj["/T"])] = "\n".join(texts(appearance["/N"].get_object()))
    return result
