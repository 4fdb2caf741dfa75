"""Builders shared by the intake tests: demo-like organisation, types and circuits."""

from __future__ import annotations

import io

from app.auth.models import Group, OrgUnit
from app.core.extensions import db

DELEGATIONS = [
    "delegation-nantes",
    "delegation-saint-nazaire",
    "delegation-pays-de-retz",
    "delegation-vignoble",
    "delegation-chateaubriant",
    "delegation-ancenis",
]
SERVICES = [
    "courrier-central",
    "dgs",
    "routes",
    "colleges",
    "rh-recrutement",
    "comptabilite",
    "signataires-president",
    "transports-scolaires",
    "autonomie",
    *DELEGATIONS,
]


def setup_registry(app, deploy: bool = True) -> None:
    """Groups (each with its own unit), the type list and, optionally, the circuits."""
    from app.correspondence import demo

    with app.app_context():
        for name in SERVICES:
            if db.session.query(Group).filter_by(name=name).first() is None:
                unit = OrgUnit(code=f"u-{name}", name=f"Unité {name}", kind="service")
                db.session.add(unit)
                db.session.add(Group(name=name, label=name, org_unit=unit))
        db.session.commit()
        demo.load_case_types()
        if deploy:
            demo.deploy_processes()


def pdf_bytes(text: str = "Bonjour") -> bytes:
    """A small valid one-page PDF."""
    import pikepdf

    pdf = pikepdf.new()
    page = pdf.add_blank_page(page_size=(595, 842))
    font = pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Helvetica
        )
    )
    page.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
    safe = text.replace("(", "").replace(")", "").encode("latin-1", "replace")
    page.Contents = pdf.make_stream(b"BT /F1 14 Tf 72 760 Td (" + safe + b") Tj ET")
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()
