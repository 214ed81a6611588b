"""Invoice numbers in free text (remittance information, gateway and bank references).

Pure, no database: `find_invoice_numbers(text)` returns the document numbers in the order they
first appear, normalised to how they are issued (`INV-2026-000042`). It tolerates lower case,
spaces, dots, slashes or underscores in place of the dashes, and a short sequence part when the
writer dropped the leading zeros (`inv 2026 42`)."""

import re

SERIES = ("INV", "PEN")
_PATTERN = re.compile(
    r"(?<![A-Za-z0-9])(" + "|".join(SERIES) + r")[\s\-_./]*((?:19|20)\d{2})[\s\-_./]*(\d{1,6})(?!\d)",
    re.IGNORECASE,
)


def find_invoice_numbers(text: str) -> list[str]:
    """Invoice and penalty invoice numbers in `text`, normalised, first occurrence order, no repeats."""
    found: list[str] = []
    for series, year, seq in _PATTERN.findall(text or ""):
        number = f"{series.upper()}-{year}-{int(seq):06d}"
        if number not in found:
            found.append(number)
    return found
