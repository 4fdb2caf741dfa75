"""Signing throughput: the parapheur circuit against raw pyHanko, in the same run.

    .venv/bin/python bench/sign.py [--count 20] [--pages 1 20] [--database-url URL]

For each document size the same PDF is signed ``count`` times, the measurements
interleaved (one of each in turn) so that the load of a shared machine weighs on all alike:

- circuit: completing the signature task of a folder — permission, delegation and
  certificate checks, the cached signer, the PAdES signature with its visible stamp, the
  signed PDF stored as a new document, hashes and audit recorded, the workflow saved and
  the folder closed: ``engine.complete_task(task, {"decision": "sign"}, signer)``;
- pyhanko: raw pyHanko as its documentation uses it, with a signer loaded once
  (``SimpleSigner.load_pkcs12_data``, ``PdfSigner.sign_pdf``), the same PAdES B-B
  signature, stamp and place — the reference of the target ratio (≤ 1.5);
- tuned: Missive's own call to pyHanko alone (key object kept loaded, size of the
  signature reserved instead of pyHanko's trial signature): the floor of the circuit;
- reload: raw pyHanko reloading the PKCS#12 for each signature (what the signer cache
  avoids), for context.

Also prints the Python peak memory of one circuit signature and one raw signature
(tracemalloc) and the process peak RSS. Everything lives in a temporary directory (SQLite
by default); the test PKI is generated at start.
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORK = Path(tempfile.mkdtemp(prefix="missive-bench-sign-"))
os.environ.setdefault("MISSIVE_HUEY_DB", str(WORK / "huey.db"))
os.environ.pop("DATABASE_URL", None)

PASSWORD = "bench-password"  # noqa: S105 (generated throwaway key)
STAMP = ["Signé électroniquement par", "Signataire du banc", "Directrice", "le 01/01/2026 à 10:00"]


def _pkcs12() -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)

    def name(cn):
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
            ]
        )

    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("Banc d'essai CA"))
        .issuer_name(name("Banc d'essai CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    usage = x509.KeyUsage(True, True, False, False, False, False, False, False, False)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name("Signataire du banc"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(usage, critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    return serialization.pkcs12.serialize_key_and_certificates(
        b"bench", key, certificate, [ca], serialization.BestAvailableEncryption(PASSWORD.encode())
    )


def _document(pages: int) -> bytes:
    """A letter of ``pages`` pages rendered by WeasyPrint (embedded fonts, compressed)."""
    from weasyprint import HTML

    paragraph = (
        "<p>" + "Madame, Monsieur, nous accusons réception de votre demande et vous informons "
        "que le Département l'instruit dans les meilleurs délais. " * 6 + "</p>"
    )
    body = "".join(
        f"<h2>Page {n + 1}</h2>{paragraph * 5}<div style='page-break-after:always'></div>"
        for n in range(pages - 1)
    )
    body += f"<h2>Page {pages}</h2>{paragraph * 2}<p style='color:white'>[[signature]]</p>"
    return HTML(string=f"<html><body>{body}</body></html>").write_pdf()


def _pyhanko_signer(p12: bytes):
    from pyhanko.sign.signers import SimpleSigner

    return SimpleSigner.load_pkcs12_data(p12, other_certs=[], passphrase=PASSWORD.encode())


def _pyhanko_sign(data: bytes, signer, box) -> bytes:
    """Raw pyHanko, as documented: same PAdES B-B signature, stamp and place."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.text import TextBoxStyle
    from pyhanko.sign import fields, signers
    from pyhanko.sign.fields import SigSeedSubFilter
    from pyhanko.stamp import TextStampStyle

    meta = signers.PdfSignatureMetadata(
        field_name="Signature1",
        md_algorithm="sha256",
        subfilter=SigSeedSubFilter.PADES,
        reason="Signature",
        name="Signataire du banc",
    )
    style = TextStampStyle(
        stamp_text="\n".join(STAMP), border_width=1, text_box_style=TextBoxStyle(font_size=8)
    )
    pdf_signer = signers.PdfSigner(
        meta,
        signer,
        stamp_style=style,
        new_field_spec=fields.SigFieldSpec("Signature1", on_page=box.page, box=box.box),
    )
    return pdf_signer.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(data))).getvalue()


def _tuned_signer(p12: bytes):
    from cryptography.hazmat.primitives.serialization import pkcs12

    from app.parapheur.keystore import LoadedKeySigner

    key, certificate, others = pkcs12.load_key_and_certificates(p12, PASSWORD.encode())
    return LoadedKeySigner(certificate, list(others), key)


def _tuned_sign(data: bytes, signer, box) -> bytes:
    from app.parapheur import signing

    return signing.sign_pdf(
        data,
        signer,
        level="B-B",
        where=box,
        reason="Signature",
        stamp_lines=STAMP,
        signer_name="Signataire du banc",
    ).data


def _timed(func, *args) -> float:
    start = time.perf_counter()
    func(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--pages", type=int, nargs="+", default=[1, 20])
    parser.add_argument(
        "--database-url", default=None, help="a PostgreSQL URL to bench on (its schema is emptied!)"
    )
    args = parser.parse_args()

    from flask_migrate import upgrade

    from app import create_app
    from app.auth.services import create_user, find_user_by_email
    from app.core.extensions import db
    from app.engine import services as engine
    from app.parapheur import services, signing
    from app.parapheur.services import Upload

    url = args.database_url or f"sqlite:///{WORK / 'bench.db'}"
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "MISSIVE_STORAGE": str(WORK / "storage"),
            "MISSIVE_ENV": "testing",
        }
    )
    p12 = _pkcs12()
    with app.app_context():
        if url.startswith("postgresql"):
            db.session.execute(db.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
            db.session.commit()
        upgrade()
        create_user(email="redaction@bench.test", name="Rédaction", password=None)
        create_user(
            email="signature@bench.test",
            name="Signataire du banc",
            title="Directrice",
            password=None,
        )
        services.import_pkcs12(p12, PASSWORD, email="signature@bench.test")
        engine.deploy(
            [(p.name, p.read_bytes()) for p in (ROOT / "processes").glob("parapheur*")], actor=None
        )
        print(
            f"database: {db.engine.dialect.name}; {args.count} signatures of each kind per "
            f"size, interleaved; Python {sys.version.split()[0]}; load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
        print(
            f"{'pages':>5} {'bytes':>7} | {'circuit/s':>9} {'pyhanko/s':>9} {'ratio':>5} | "
            f"{'tuned/s':>7} {'ratio':>5} | {'reload/s':>8} | {'circuit mem':>11} "
            f"{'pyhanko mem':>11}"
        )
        for pages in args.pages:
            drafter = find_user_by_email("redaction@bench.test")
            signer = find_user_by_email("signature@bench.test")
            pdf = _document(pages)
            layout = signing.read_layout(pdf)
            box = signing.placement(layout, 0)
            raw_signer, tuned_signer = _pyhanko_signer(p12), _tuned_signer(p12)
            folders = [
                services.create_folder(
                    title=f"Banc {pages} p. n° {n}",
                    type="courrier_sortant",
                    actor=drafter,
                    documents=[Upload("banc.pdf", pdf)],
                    circuit=[{"step": "signature", "assignee": signer.email}],
                )
                for n in range(args.count + 3)
            ]
            tasks = [services.open_tasks(f)[0].id for f in folders]
            for task_id in tasks[:2]:  # warm-up: the signer enters the cache
                engine.complete_task(task_id, {"decision": "sign"}, signer)
            _pyhanko_sign(pdf, raw_signer, box)
            _tuned_sign(pdf, tuned_signer, box)
            gc.collect()

            circuit = raw = tuned = 0.0
            for task_id in tasks[2:-1]:
                circuit += _timed(engine.complete_task, task_id, {"decision": "sign"}, signer)
                raw += _timed(_pyhanko_sign, pdf, raw_signer, box)
                tuned += _timed(_tuned_sign, pdf, tuned_signer, box)
            reloads = max(3, args.count // 4)
            reload = sum(
                _timed(_pyhanko_sign, pdf, _pyhanko_signer(p12), box) for _ in range(reloads)
            )

            tracemalloc.start()
            engine.complete_task(tasks[-1], {"decision": "sign"}, signer)
            circuit_peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.reset_peak()
            _pyhanko_sign(pdf, raw_signer, box)
            raw_peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()

            signed = services.get_folder(folders[-1].id).current_documents("main")[0].current
            assert signed.kind == "signed" and signed.size > len(pdf)
            n = args.count
            print(
                f"{pages:>5} {len(pdf):>7} | {n / circuit:>9.1f} {n / raw:>9.1f} "
                f"{circuit / raw:>5.2f} | {n / tuned:>7.1f} {circuit / tuned:>5.2f} | "
                f"{reloads / reload:>8.1f} | {circuit_peak / 1e6:>8.1f} MB "
                f"{raw_peak / 1e6:>8.1f} MB"
            )
            db.session.remove()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process peak RSS {peak:.0f} MB. Target: circuit/pyhanko ratio ≤ 1.5.")


if __name__ == "__main__":
    main()
