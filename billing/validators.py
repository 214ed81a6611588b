"""Validation of customer master data: ISO 3166 countries, ISO 4217 currencies and tax ids by country.

Pure functions, no database. Tax ids are checked with python-stdnum for the countries listed in
TAX_ID_RULES (the EU, the United Kingdom, the United States, Switzerland, Norway, Australia and
Canada): what a finance clerk types there has a known format and check digits, and a typo caught
here is an invoice that is not rejected later. Elsewhere the id is accepted as typed (trimmed): a
wrong refusal would stop a genuine customer from being invoiced at all, which is worse than an
unchecked number.
"""

import re
from dataclasses import dataclass
from importlib import import_module

from django.core.exceptions import ValidationError
from stdnum import exceptions as stdnum_errors

# ISO 3166-1 alpha-2 codes and short names (Debian iso-codes).
COUNTRIES: dict[str, str] = {
    "AD": "Andorra",
    "AE": "United Arab Emirates",
    "AF": "Afghanistan",
    "AG": "Antigua and Barbuda",
    "AI": "Anguilla",
    "AL": "Albania",
    "AM": "Armenia",
    "AO": "Angola",
    "AQ": "Antarctica",
    "AR": "Argentina",
    "AS": "American Samoa",
    "AT": "Austria",
    "AU": "Australia",
    "AW": "Aruba",
    "AX": "Åland Islands",
    "AZ": "Azerbaijan",
    "BA": "Bosnia and Herzegovina",
    "BB": "Barbados",
    "BD": "Bangladesh",
    "BE": "Belgium",
    "BF": "Burkina Faso",
    "BG": "Bulgaria",
    "BH": "Bahrain",
    "BI": "Burundi",
    "BJ": "Benin",
    "BL": "Saint Barthélemy",
    "BM": "Bermuda",
    "BN": "Brunei Darussalam",
    "BO": "Bolivia",
    "BQ": "Bonaire, Sint Eustatius and Saba",
    "BR": "Brazil",
    "BS": "Bahamas",
    "BT": "Bhutan",
    "BV": "Bouvet Island",
    "BW": "Botswana",
    "BY": "Belarus",
    "BZ": "Belize",
    "CA": "Canada",
    "CC": "Cocos (Keeling) Islands",
    "CD": "Congo, The Democratic Republic of the",
    "CF": "Central African Republic",
    "CG": "Congo",
    "CH": "Switzerland",
    "CI": "Côte d'Ivoire",
    "CK": "Cook Islands",
    "CL": "Chile",
    "CM": "Cameroon",
    "CN": "China",
    "CO": "Colombia",
    "CR": "Costa Rica",
    "CU": "Cuba",
    "CV": "Cabo Verde",
    "CW": "Curaçao",
    "CX": "Christmas Island",
    "CY": "Cyprus",
    "CZ": "Czechia",
    "DE": "Germany",
    "DJ": "Djibouti",
    "DK": "Denmark",
    "DM": "Dominica",
    "DO": "Dominican Republic",
    "DZ": "Algeria",
    "EC": "Ecuador",
    "EE": "Estonia",
    "EG": "Egypt",
    "EH": "Western Sahara",
    "ER": "Eritrea",
    "ES": "Spain",
    "ET": "Ethiopia",
    "FI": "Finland",
    "FJ": "Fiji",
    "FK": "Falkland Islands (Malvinas)",
    "FM": "Micronesia, Federated States of",
    "FO": "Faroe Islands",
    "FR": "France",
    "GA": "Gabon",
    "GB": "United Kingdom",
    "GD": "Grenada",
    "GE": "Georgia",
    "GF": "French Guiana",
    "GG": "Guernsey",
    "GH": "Ghana",
    "GI": "Gibraltar",
    "GL": "Greenland",
    "GM": "Gambia",
    "GN": "Guinea",
    "GP": "Guadeloupe",
    "GQ": "Equatorial Guinea",
    "GR": "Greece",
    "GS": "South Georgia and the South Sandwich Islands",
    "GT": "Guatemala",
    "GU": "Guam",
    "GW": "Guinea-Bissau",
    "GY": "Guyana",
    "HK": "Hong Kong",
    "HM": "Heard Island and McDonald Islands",
    "HN": "Honduras",
    "HR": "Croatia",
    "HT": "Haiti",
    "HU": "Hungary",
    "ID": "Indonesia",
    "IE": "Ireland",
    "IL": "Israel",
    "IM": "Isle of Man",
    "IN": "India",
    "IO": "British Indian Ocean Territory",
    "IQ": "Iraq",
    "IR": "Iran",
    "IS": "Iceland",
    "IT": "Italy",
    "JE": "Jersey",
    "JM": "Jamaica",
    "JO": "Jordan",
    "JP": "Japan",
    "KE": "Kenya",
    "KG": "Kyrgyzstan",
    "KH": "Cambodia",
    "KI": "Kiribati",
    "KM": "Comoros",
    "KN": "Saint Kitts and Nevis",
    "KP": "North Korea",
    "KR": "South Korea",
    "KW": "Kuwait",
    "KY": "Cayman Islands",
    "KZ": "Kazakhstan",
    "LA": "Laos",
    "LB": "Lebanon",
    "LC": "Saint Lucia",
    "LI": "Liechtenstein",
    "LK": "Sri Lanka",
    "LR": "Liberia",
    "LS": "Lesotho",
    "LT": "Lithuania",
    "LU": "Luxembourg",
    "LV": "Latvia",
    "LY": "Libya",
    "MA": "Morocco",
    "MC": "Monaco",
    "MD": "Moldova",
    "ME": "Montenegro",
    "MF": "Saint Martin (French part)",
    "MG": "Madagascar",
    "MH": "Marshall Islands",
    "MK": "North Macedonia",
    "ML": "Mali",
    "MM": "Myanmar",
    "MN": "Mongolia",
    "MO": "Macao",
    "MP": "Northern Mariana Islands",
    "MQ": "Martinique",
    "MR": "Mauritania",
    "MS": "Montserrat",
    "MT": "Malta",
    "MU": "Mauritius",
    "MV": "Maldives",
    "MW": "Malawi",
    "MX": "Mexico",
    "MY": "Malaysia",
    "MZ": "Mozambique",
    "NA": "Namibia",
    "NC": "New Caledonia",
    "NE": "Niger",
    "NF": "Norfolk Island",
    "NG": "Nigeria",
    "NI": "Nicaragua",
    "NL": "Netherlands",
    "NO": "Norway",
    "NP": "Nepal",
    "NR": "Nauru",
    "NU": "Niue",
    "NZ": "New Zealand",
    "OM": "Oman",
    "PA": "Panama",
    "PE": "Peru",
    "PF": "French Polynesia",
    "PG": "Papua New Guinea",
    "PH": "Philippines",
    "PK": "Pakistan",
    "PL": "Poland",
    "PM": "Saint Pierre and Miquelon",
    "PN": "Pitcairn",
    "PR": "Puerto Rico",
    "PS": "Palestine, State of",
    "PT": "Portugal",
    "PW": "Palau",
    "PY": "Paraguay",
    "QA": "Qatar",
    "RE": "Réunion",
    "RO": "Romania",
    "RS": "Serbia",
    "RU": "Russian Federation",
    "RW": "Rwanda",
    "SA": "Saudi Arabia",
    "SB": "Solomon Islands",
    "SC": "Seychelles",
    "SD": "Sudan",
    "SE": "Sweden",
    "SG": "Singapore",
    "SH": "Saint Helena, Ascension and Tristan da Cunha",
    "SI": "Slovenia",
    "SJ": "Svalbard and Jan Mayen",
    "SK": "Slovakia",
    "SL": "Sierra Leone",
    "SM": "San Marino",
    "SN": "Senegal",
    "SO": "Somalia",
    "SR": "Suriname",
    "SS": "South Sudan",
    "ST": "Sao Tome and Principe",
    "SV": "El Salvador",
    "SX": "Sint Maarten (Dutch part)",
    "SY": "Syria",
    "SZ": "Eswatini",
    "TC": "Turks and Caicos Islands",
    "TD": "Chad",
    "TF": "French Southern Territories",
    "TG": "Togo",
    "TH": "Thailand",
    "TJ": "Tajikistan",
    "TK": "Tokelau",
    "TL": "Timor-Leste",
    "TM": "Turkmenistan",
    "TN": "Tunisia",
    "TO": "Tonga",
    "TR": "Türkiye",
    "TT": "Trinidad and Tobago",
    "TV": "Tuvalu",
    "TW": "Taiwan",
    "TZ": "Tanzania",
    "UA": "Ukraine",
    "UG": "Uganda",
    "UM": "United States Minor Outlying Islands",
    "US": "United States",
    "UY": "Uruguay",
    "UZ": "Uzbekistan",
    "VA": "Holy See (Vatican City State)",
    "VC": "Saint Vincent and the Grenadines",
    "VE": "Venezuela",
    "VG": "Virgin Islands, British",
    "VI": "Virgin Islands, U.S.",
    "VN": "Vietnam",
    "VU": "Vanuatu",
    "WF": "Wallis and Futuna",
    "WS": "Samoa",
    "YE": "Yemen",
    "YT": "Mayotte",
    "ZA": "South Africa",
    "ZM": "Zambia",
    "ZW": "Zimbabwe",
}

# ISO 4217 currencies in circulation (2026 list) without the X codes for metals, funds and tests, and
# those withdrawn since 2023 (last line), which customers set up before may still be billed in.
CURRENCIES = frozenset(
    """
    AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BHD BIF BMD BND BOB BOV BRL BSD BTN BWP BYN BZD CAD
    CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL
    GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW
    KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD
    NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP
    SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS
    VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
    ANG BGN CUC HRK SLL ZWL
    """.split()  # noqa: SIM905 - a block of codes reads better than 164 quoted strings
)


def normalize_code(value) -> str:
    """An ISO code as stored: trimmed and upper-case."""
    return (value or "").strip().upper()


def validate_country_code(value: str) -> None:
    """An ISO 3166-1 alpha-2 country code, upper-case (empty is left to `blank`)."""
    if value and value not in COUNTRIES:
        raise ValidationError(
            "%(value)s is not an ISO 3166 country code; use two letters such as FR, DE, GB or US.",
            code="invalid_country",
            params={"value": value},
        )


def validate_currency_code(value: str) -> None:
    """An ISO 4217 currency code, upper-case."""
    if value and value not in CURRENCIES:
        raise ValidationError(
            "%(value)s is not an ISO 4217 currency code; use three letters such as EUR, USD or GBP.",
            code="invalid_currency",
            params={"value": value},
        )


def country_name(code: str) -> str:
    """The short English name, with the article a sentence needs ("the United Kingdom")."""
    name = COUNTRIES.get(code, code)
    return f"the {name}" if code in {"GB", "US", "NL", "AE", "PH", "BS", "GM"} else name


# --- Tax ids -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaxIdRule:
    """How a country's business tax id is checked and stored.

    `module` is the python-stdnum module that validates it; `prefix`, when set, is the country prefix
    the stored (compact) form starts with, added when the clerk leaves it out."""

    kind: str
    module: str
    expected: str
    prefix: str = ""


def _eu(prefix: str, expected: str) -> TaxIdRule:
    return TaxIdRule("VAT number", "stdnum.eu.vat", f"{prefix} followed by {expected}", prefix)


TAX_ID_RULES: dict[str, TaxIdRule] = {
    "AT": _eu("ATU", "8 digits, e.g. ATU13585627"),
    "BE": _eu("BE", "10 digits, e.g. BE0403019261"),
    "BG": _eu("BG", "9 or 10 digits, e.g. BG175074752"),
    "CY": _eu("CY", "8 digits and a letter, e.g. CY10259033P"),
    "CZ": _eu("CZ", "8 to 10 digits, e.g. CZ25123891"),
    "DE": _eu("DE", "9 digits, e.g. DE136695976"),
    "DK": _eu("DK", "8 digits, e.g. DK13585628"),
    "EE": _eu("EE", "9 digits, e.g. EE100931558"),
    "ES": _eu("ES", "9 characters (a letter or digit, 7 digits, a letter or digit), e.g. ESA13585625"),
    "FI": _eu("FI", "8 digits, e.g. FI20774740"),
    "FR": _eu("FR", "a 2-character key and the 9-digit SIREN, e.g. FR40303265045"),
    "GR": _eu("EL", "9 digits, e.g. EL094259216"),
    "HR": _eu("HR", "11 digits, e.g. HR33392005961"),
    "HU": _eu("HU", "8 digits, e.g. HU12892312"),
    "IE": _eu("IE", "8 or 9 characters (7 digits and 1 or 2 letters), e.g. IE6433435F"),
    "IT": _eu("IT", "11 digits, e.g. IT00743110157"),
    "LT": _eu("LT", "9 or 12 digits, e.g. LT119511515"),
    "LU": _eu("LU", "8 digits, e.g. LU15027442"),
    "LV": _eu("LV", "11 digits, e.g. LV40003521600"),
    "MT": _eu("MT", "8 digits, e.g. MT11679112"),
    "NL": _eu("NL", "9 digits, the letter B and 2 digits, e.g. NL004495445B01"),
    "PL": _eu("PL", "10 digits, e.g. PL8567346215"),
    "PT": _eu("PT", "9 digits, e.g. PT501964843"),
    "RO": _eu("RO", "2 to 10 digits, e.g. RO18547290"),
    "SE": _eu("SE", "12 digits, e.g. SE123456789701"),
    "SI": _eu("SI", "8 digits, e.g. SI50223054"),
    "SK": _eu("SK", "10 digits, e.g. SK2022749619"),
    "GB": TaxIdRule("VAT number", "stdnum.gb.vat", "GB followed by 9 or 12 digits, e.g. GB980780684", "GB"),
    "US": TaxIdRule("EIN", "stdnum.us.ein", "9 digits, written 04-2103594"),
    "CH": TaxIdRule("VAT number", "stdnum.ch.vat", "CHE, 9 digits and MWST, TVA or IVA, e.g. CHE-107.787.577 IVA"),
    "NO": TaxIdRule("VAT number", "stdnum.no.mva", "NO, 9 digits and MVA, e.g. NO995525828MVA", "NO"),
    "AU": TaxIdRule("ABN", "stdnum.au.abn", "11 digits, e.g. 83 914 571 673"),
    "CA": TaxIdRule("business number", "stdnum.ca.bn", "9 digits, optionally a program account, e.g. 123026635RC0001"),
}
# VAT prefixes of the EU member states (Greece is EL) and Northern Ireland, for telling a number of
# another country apart from one typed without its prefix.
_VAT_PREFIXES = {r.prefix[:2] for r in TAX_ID_RULES.values() if r.module == "stdnum.eu.vat"} | {"XI", "GB"}
_REASONS = {
    stdnum_errors.InvalidChecksum: "the check digits do not match",
    stdnum_errors.InvalidLength: "it has the wrong length",
    stdnum_errors.InvalidFormat: "it has the wrong format",
    stdnum_errors.InvalidComponent: "a part of it is not valid",
}
_SEPARATORS = re.compile(r"[\s.\-/,:]+")


def _refuse(rule: TaxIdRule, country: str, reason: str) -> ValidationError:
    return ValidationError(
        "Not a valid %(kind)s for %(country)s (%(code)s): %(reason)s. Expected %(expected)s.",
        code="invalid_tax_id",
        params={
            "kind": rule.kind,
            "country": country_name(country),
            "code": country,
            "reason": reason,
            "expected": rule.expected,
        },
    )


def normalize_tax_id(value: str, country: str) -> str:
    """The tax id in the compact form stored and printed on invoices, checked for the customer's
    country; raises ValidationError naming the country and the expected format. An empty id, or one
    for a country without a rule, comes back trimmed but otherwise as typed."""
    value = (value or "").strip()
    country = normalize_code(country)
    rule = TAX_ID_RULES.get(country)
    if not value or rule is None:
        return value
    number = _SEPARATORS.sub("", value).upper()
    # Northern Ireland traders have XI numbers under the EU rules; the rest of the UK has GB ones.
    eu = rule.module == "stdnum.eu.vat" or (country == "GB" and number.startswith("XI"))
    try:
        if eu:
            own = "XI" if country == "GB" else rule.prefix[:2]
            given = "EL" if country == "GR" and number[:2] == "GR" else number[:2]
            if given != own and given in _VAT_PREFIXES:
                raise _refuse(rule, country, f"{given} is the prefix of another country")
            number = own + (number[2:] if given == own else number)
            return import_module("stdnum.eu.vat").validate(number)
        compact = import_module(rule.module).validate(value)
    except stdnum_errors.ValidationError as exc:
        reason = next((text for cls, text in _REASONS.items() if isinstance(exc, cls)), "it is not valid")
        raise _refuse(rule, country, reason) from exc
    return compact if compact.startswith(rule.prefix) else rule.prefix + compact


def normalize_iban(value: str) -> str:
    """An IBAN without spaces, upper-case, checked (country format and check digits); "" stays ""."""
    from stdnum import iban
    from stdnum.exceptions import ValidationError as StdnumError

    value = (value or "").replace(" ", "").strip().upper()
    if not value:
        return ""
    try:
        return iban.validate(value)
    except StdnumError:
        raise ValidationError(
            f"{value} is not a valid IBAN (check the country code, length and check digits)."
        ) from None
