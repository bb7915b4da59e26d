"""Write the hostile-input corpus replayed by tests/test_hostile_corpus.py (issue 12).

Run from the project root:  python tests/hostile/make_corpus.py
Each case is a folder tests/hostile/corpus/<id>/ holding the input files exactly as a user might bring them
(for cli_* cases, command.txt: the command-line arguments);
tests/hostile/cases.toml (hand-written) says what each must give: a clear error naming the file (and the
column and row where there is one), a ledger entry, or a clean read. The files are also the seed corpus of the
fuzz target (tests/hostile/fuzz_readers.py).

The generator is deterministic, so the stored corpus can be re-made and checked with `git diff`
(tests/test_hostile_corpus.py generates it again into a temporary folder and compares byte for byte). What
the writers would otherwise stamp with the time of writing is pinned to FIXED (2021-01-01 00:00:00):
- .xlsx (openpyxl, directly or through pandas) and the plain zip archive: every zip entry's date, and the
  workbook's created/modified properties in docProps/core.xml (openpyxl sets `modified` when saving, so
  both are rewritten after saving: pinned_zip); openpyxl writes its XML with the standard library's
  serialiser, not lxml, so the bytes do not depend on whether lxml is installed (OPENPYXL_LXML, set in main
  before openpyxl is imported; hence the comparison runs the script in a process of its own);
- .dta (pandas): the header's time stamp (to_stata's time_stamp);
- .sav (pyreadstat/ReadStat, which has no option for it): the header's creation date and time (pinned_sav);
- .db (sqlite3): nothing; the file holds no time, and a fresh database written by the same statements has the
  same pages (the header records the SQLite library's version, as the other files record their writers').
Other versions of pandas, pyreadstat, openpyxl, SQLite or zlib may write different bytes: then regenerate,
check that cases.toml still holds, and commit the corpus.

    python tests/hostile/make_corpus.py            # (re)writes tests/hostile/corpus
    python tests/hostile/make_corpus.py DIR        # writes the corpus into DIR (which must not exist)
"""
from __future__ import annotations

import datetime
import io
import os
import re
import shutil
import sqlite3
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"

FIXED = datetime.datetime(2021, 1, 1)  # the time every file says it was written at

HEAD = "patient_id,index_event,index_date,age_years,sex"
GOOD = [f"P{i},tha,2021-03-{i + 1:02d},{50 + i},{'male' if i % 2 else 'female'}" for i in range(1, 7)]


def csv(*rows: str, head: str = HEAD) -> str:
    return "\n".join([head, *rows]) + "\n"


def good(*extra: str, head: str = HEAD) -> str:
    return csv(*GOOD, *extra, head=head)


def frame(n: int = 6) -> pd.DataFrame:
    return pd.DataFrame({"patient_id": [f"P{i}" for i in range(1, n + 1)], "index_event": "tha",
                         "index_date": pd.date_range("2021-03-01", periods=n).strftime("%Y-%m-%d"),
                         "age_years": np.arange(50.0, 50 + n), "sex": ["male", "female"] * (n // 2)})


def pinned_zip(data: bytes) -> bytes:
    """The same archive, entry by entry in the same order, with every entry dated FIXED and (a workbook) the
    created/modified times of docProps/core.xml set to FIXED."""
    stamp = FIXED.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            content = src.read(info)
            if info.filename == "docProps/core.xml":
                content, found = re.subn(rb"(<dcterms:(?:created|modified)\b[^>]*>)[^<]*", rb"\g<1>" + stamp, content)
                assert found == 2, content
            dst.writestr(entry(info.filename, info.compress_type, info.external_attr), content)
    return out.getvalue()


def entry(name: str, compress_type: int = zipfile.ZIP_STORED, external_attr: int = 0o600 << 16) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=FIXED.timetuple()[:6])
    info.compress_type = compress_type
    info.external_attr = external_attr
    info.create_system = 3  # as written on Unix, whatever the platform (ZipInfo's default follows it)
    return info


def xlsx(df: pd.DataFrame, **sheets: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    with pd.ExcelWriter(buf, engine="openpyxl") as w:
        df.to_excel(w, sheet_name="export", index=False)
        for name, other in sheets.items():
            other.to_excel(w, sheet_name=name, index=False)
    return pinned_zip(buf.getvalue())


def xlsx_formulas() -> bytes:
    from openpyxl import Workbook
    wb = Workbook()
    ws = wb.active
    ws.append(HEAD.split(","))
    for i in range(1, 4):
        ws.append([f"P{i}", "tha", f"2021-03-0{i}", f"=40+{i}", "male"])
    buf = io.BytesIO()
    wb.save(buf)
    return pinned_zip(buf.getvalue())


def xlsx_serial_dates() -> bytes:
    from openpyxl import Workbook
    wb = Workbook()
    ws = wb.active
    ws.append(HEAD.split(","))
    for i in range(1, 4):
        ws.append([f"P{i}", "tha", 44256 + i, 60 + i, "female"])  # Excel day numbers, no date format
    buf = io.BytesIO()
    wb.save(buf)
    return pinned_zip(buf.getvalue())


def dated() -> pd.DataFrame:
    """frame() as a statistical package holds it: index_date a date, sex a labelled code."""
    return frame().assign(index_date=lambda d: pd.to_datetime(d["index_date"]), sex=lambda d: pd.Categorical(d["sex"]))


def dta_110(df: pd.DataFrame) -> bytes:
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        return write_dta_110(df, Path(d) / "x.dta", time_stamp=FIXED, convert_dates={"index_date": "td"}).read_bytes()


def stat_file(kind: str, df: pd.DataFrame | None = None, **kw) -> bytes:
    import tempfile

    import pyreadstat
    df = frame() if df is None else df
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / f"x.{kind}"
        if kind == "dta":
            df.to_stata(p, write_index=False, time_stamp=FIXED, **kw)
        elif kind == "sav":
            pyreadstat.write_sav(df, str(p), **kw)
            return pinned_sav(p.read_bytes())
        return p.read_bytes()


def write_dta_110(df: pd.DataFrame, path: Path, **kw) -> Path:
    """A Stata format-110 file (Stata 7, what R's foreign::write.dta writes; pandas cannot read it and
    neither pandas nor pyreadstat writes it), made from pandas' format 114 by hand: version byte, old-style
    type codes, 12-character display formats. ``kw`` goes to to_stata (time_stamp, convert_dates)."""
    import struct

    df.to_stata(path, write_index=False, version=114, **kw)
    b = path.read_bytes()
    nvar = struct.unpack("<H", b[4:6])[0]
    pos = 4 + 2 + 4 + 81 + 18
    types = bytes({251: 98, 252: 105, 253: 108, 254: 102, 255: 100}.get(t, 0x7F + t) for t in b[pos:pos + nvar])
    names_at, fmt_at = pos + nvar, pos + nvar + 33 * nvar + 2 * (nvar + 1)
    fmts = b"".join(b[fmt_at + 49 * i: fmt_at + 49 * i + 12] for i in range(nvar))
    path.write_bytes(bytes([110]) + b[1:pos] + types + b[names_at:fmt_at] + fmts + b[fmt_at + 49 * nvar:])
    return path


def pinned_sav(data: bytes) -> bytes:
    """A .sav file's header with its creation date ('dd Mon yy', bytes 92-100) and time ('hh:mm:ss', bytes
    101-108) set to FIXED: ReadStat writes the time of writing there, and pyreadstat has no option for it."""
    assert data[:4] == b"$FL2" and re.fullmatch(rb"\d\d [A-Z][a-z]{2} \d\d\d\d:\d\d:\d\d", data[92:109]), data[:120]
    return data[:92] + b"01 Jan 21" + b"00:00:00" + data[109:]  # FIXED, spelt out (%b follows the locale)


def sqlite_db(rows: pd.DataFrame | None = None) -> bytes:
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "cohort.db"
        con = sqlite3.connect(p)
        (frame() if rows is None else rows).to_sql("episodes", con, index=False)
        con.execute("CREATE TABLE secrets (token TEXT)")
        con.execute("INSERT INTO secrets VALUES ('ghp_secret')")
        con.commit()
        con.close()
        return p.read_bytes()


SPEC_DATA = csv(*(f"S{i},tha,2021-0{1 + i % 9}-1{i % 10},{50 + i},{'male' if i % 2 else 'female'},"
                  f"{'yes' if i % 3 == 0 else 'no'},2022-06-30" for i in range(40)),
                head=HEAD + ",ho,last_followup_date")
TOML_EXPORT = '[[episodes]]\npath = "episodes.csv"\n'
SPEC = """[analysis]
title = "corpus"
question = "?"

[data]
path = "episodes.csv"

[outcome]
event = "ho"
horizon_days = 365

[[section]]
type = "proportion"
id = "ho_by_sex"
event = "ho"
by = "sex"
"""


def spec(extra: str = "", replace: tuple[str, str] | None = None) -> str:
    s = SPEC if replace is None else SPEC.replace(*replace)
    return s + extra


def cases() -> dict[str, dict[str, str | bytes]]:
    c: dict[str, dict[str, str | bytes]] = {}
    # --- delimited text: structure ----------------------------------------------------------------
    c["csv_empty"] = {"export.csv": ""}
    c["csv_header_only"] = {"export.csv": HEAD + "\n"}
    c["csv_bom_only"] = {"export.csv": b"\xef\xbb\xbf"}
    c["csv_whitespace_only"] = {"export.csv": "\n\n   \n"}
    c["csv_no_header"] = {"export.csv": "\n".join(GOOD) + "\n"}
    c["csv_missing_required_column"] = {"export.csv": csv("P1,tha,61,male", head="patient_id,index_event,age_years,sex")}
    c["csv_duplicate_columns"] = {"export.csv": csv("P1,tha,2021-03-04,61,60,male",
                                                    head="patient_id,index_event,index_date,age_years,age_years,sex")}
    c["csv_case_space_duplicate"] = {"export.csv": csv("P1,tha,2021-03-04,61,male,female",
                                                       head="patient_id,index_event,index_date,age_years,Sex, sex ")}
    c["csv_ragged_long_row"] = {"export.csv": good("P9,tha,2021-04-01,60,male,EXTRA,MORE")}
    c["csv_ragged_short_row"] = {"export.csv": good("P9,tha")}
    c["csv_unterminated_quote"] = {"export.csv": good('P9,tha,2021-04-01,"60,male')}
    c["csv_nul_bytes"] = {"export.csv": good().encode() + b"P9,tha,2021-04-01,6\x000,male\n"}
    c["csv_is_xlsx"] = {"export.csv": xlsx(frame())}
    c["csv_is_zip"] = {"export.csv": zipfile_bytes()}
    c["csv_is_png"] = {"export.csv": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4}
    c["csv_utf16_le_bom"] = {"export.csv": good().encode("utf-16")}
    c["csv_utf16_be_bom"] = {"export.csv": b"\xfe\xff" + good().encode("utf-16-be")}
    c["csv_utf8_bom"] = {"export.csv": b"\xef\xbb\xbf" + good().encode()}
    c["csv_mixed_utf8_latin1"] = {"export.csv": (good(head=HEAD + ",site").replace("\n", ",Basel\n")
                                                 .replace("\n", "\n", 1)).encode()
                                  + "P9,tha,2021-04-01,60,male,Zürich\n".encode("latin-1")}
    c["csv_cp1252_en_dash"] = {"export.csv": csv("P1,tha,2021-03-04,61,male,A–B",
                                                 head=HEAD + ",site").encode("cp1252")}
    c["csv_latin1"] = {"export.csv": csv("P1,tha,2021-03-04,61,male,Zürich", head=HEAD + ",site").encode("latin-1")}
    c["csv_bare_cr"] = {"export.csv": good().replace("\n", "\r")}
    c["csv_crlf"] = {"export.csv": good().replace("\n", "\r\n")}
    c["csv_semicolon"] = {"export.csv": good().replace(",", ";")}
    c["csv_tab"] = {"export.tsv": good().replace(",", "\t")}
    c["csv_pipe"] = {"export.csv": good().replace(",", "|")}
    c["csv_decimal_comma_semicolon"] = {"export.csv": csv("P1;tha;2021-03-04;61,5;male",
                                                          head=HEAD.replace(",", ";"))}
    c["csv_quoted_everything"] = {"export.csv": "\n".join(",".join(f'"{v}"' for v in r.split(","))
                                                          for r in [HEAD, *GOOD]) + "\n"}
    c["csv_trailing_delimiters"] = {"export.csv": "\n".join(r + ",," for r in [HEAD, *GOOD]) + "\n"}
    c["csv_blank_lines_between"] = {"export.csv": "\n\n".join([HEAD, *GOOD]) + "\n"}
    c["csv_header_padded"] = {"export.csv": csv(*GOOD, head=" patient_id , index_event ,index_date,age_years,sex")}
    c["csv_header_upper"] = {"export.csv": csv(*GOOD, head=HEAD.upper())}
    c["csv_long_field"] = {"export.csv": good(head=HEAD + ",site").replace("\n", ",A\n")[len(HEAD + ",site"):]
                           .join([HEAD + ",site", ""]) + "P9,tha,2021-04-01,60,male," + "x" * 200_000 + "\n"}
    c["csv_many_columns"] = {"export.csv": csv(*(r + "," + ",".join("1" for _ in range(3000)) for r in GOOD),
                                               head=HEAD + "," + ",".join(f"x{i}" for i in range(3000)))}
    c["csv_comment_lines"] = {"export.csv": "# exported 2026-01-01 by system X\n" + good()}
    c["csv_trailing_total_row"] = {"export.csv": good("Total,,,,")}
    c["csv_repeated_header"] = {"export.csv": good(HEAD)}
    # --- values ---------------------------------------------------------------------------------
    c["val_impossible_date"] = {"export.csv": good("P9,tha,2021-02-30,60,male")}
    c["val_future_date"] = {"export.csv": good("P9,tha,2099-01-01,60,male")}
    c["val_ancient_date"] = {"export.csv": good("P9,tha,1066-10-14,60,male")}
    c["val_mixed_date_formats"] = {"export.csv": good("P9,tha,04/03/2021,60,male", "P10,tha,4 March 2021,60,male")}
    c["val_date_excel_serial"] = {"export.csv": good("P9,tha,44259,60,male")}
    c["val_negative_age"] = {"export.csv": good("P9,tha,2021-04-01,-4,male")}
    c["val_age_200"] = {"export.csv": good("P9,tha,2021-04-01,200,male")}
    c["val_age_text"] = {"export.csv": good("P9,tha,2021-04-01,sixty,male")}
    c["val_age_overflow"] = {"export.csv": good("P9,tha,2021-04-01,1e400,male")}
    c["val_age_inf_nan"] = {"export.csv": good("P9,tha,2021-04-01,inf,male", "P10,tha,2021-04-02,nan,male")}
    c["val_age_thousands"] = {"export.csv": good('P9,tha,2021-04-01,"1,000",male')}
    c["val_age_percent"] = {"export.csv": good("P9,tha,2021-04-01,60%,male")}
    c["val_sex_typo"] = {"export.csv": good("P9,tha,2021-04-01,60,femle")}
    c["val_sex_codes_numeric"] = {"export.csv": good("P9,tha,2021-04-01,60,1", "P10,tha,2021-04-01,60,2")}
    c["val_index_event_unknown"] = {"export.csv": good("P9,zzz,2021-04-01,60,male")}
    c["val_index_event_case"] = {"export.csv": good("P9,THA,2021-04-01,60,male", "P10, Tha ,2021-04-01,60,male")}
    c["val_missing_patient_id"] = {"export.csv": good(",tha,2021-04-01,60,male")}
    c["val_duplicate_rows"] = {"export.csv": good(GOOD[0], GOOD[0])}
    c["val_duplicate_id_conflict"] = {"export.csv": good("P1,tha,2021-03-02,99,female")}
    c["val_missing_tokens"] = {"export.csv": good("P9,tha,2021-04-01,NA,n/a", "P10,tha,2021-04-01,.,-",
                                                  "P11,tha,2021-04-01,-999,NULL")}
    c["val_all_rows_excluded"] = {"export.csv": csv("P1,zzz,2021-02-30,60,male", "P2,,,60,male")}
    c["val_formula_injection"] = {"export.csv": good('P9,tha,2021-04-01,60,"=HYPERLINK(""http://x"")"',
                                                     head=HEAD)}
    c["val_terminal_escape"] = {"export.csv": good("P9,tha,2021-04-01,60,\x1b[31mred\x1b[0m")}
    c["val_control_chars"] = {"export.csv": good("P9,tha,2021-04-01,60,ma\x07le\x08")}
    c["val_emoji_and_rtl"] = {"export.csv": good("P9,tha,2021-04-01,60,male\u202e", head=HEAD).replace(
        "P9", "P9🦴")}
    c["val_homoglyph_code"] = {"export.csv": good("P9,thа,2021-04-01,60,male")}  # Cyrillic a
    c["val_very_long_id"] = {"export.csv": good("P" + "9" * 10_000 + ",tha,2021-04-01,60,male")}
    c["val_dose_cgy_column"] = {"export.csv": csv("P1,tha,2021-03-04,61,male,radiotherapy,700",
                                                  "P2,tha,2021-03-05,62,male,radiotherapy,8",
                                                  head=HEAD + ",prophylaxis,rt_dose_cgy")}
    c["val_dose_negative"] = {"export.csv": csv("P1,tha,2021-03-04,61,male,radiotherapy,-7",
                                                head=HEAD + ",prophylaxis,rt_dose_gy")}
    c["val_dose_huge"] = {"export.csv": csv("P1,tha,2021-03-04,61,male,radiotherapy,700",
                                            head=HEAD + ",prophylaxis,rt_dose_gy")}
    c["val_brooker_5"] = {"export.csv": csv("P1,tha,2021-03-04,61,male,5", head=HEAD + ",brooker_grade")}
    c["val_brooker_roman"] = {"export.csv": csv("P1,tha,2021-03-04,61,male,III", head=HEAD + ",brooker_grade")}
    c["val_ho_before_index"] = {"export.csv": csv("P1,tha,2021-03-04,61,male,yes,2021-01-01",
                                                  head=HEAD + ",ho,ho_date")}
    c["val_death_before_index"] = {"export.csv": csv("P1,tha,2021-03-04,61,male,2020-01-01",
                                                     head=HEAD + ",death_date")}
    c["val_followup_before_index"] = {"export.csv": csv("P1,tha,2021-03-04,61,male,2020-01-01",
                                                        head=HEAD + ",last_followup_date")}
    c["val_ho_date_without_ho"] = {"export.csv": csv("P1,tha,2021-03-04,61,male,no,2021-06-01",
                                                     head=HEAD + ",ho,ho_date")}
    c["val_bool_variants"] = {"export.csv": csv(*(f"P{i},tha,2021-03-0{i},61,male,{v}" for i, v in
                                                  enumerate(["yes", "Y", "1", "true", "no", "0", "maybe"], 1)),
                                                head=HEAD + ",prior_ho")}
    c["val_gcs_out_of_range"] = {"export.csv": csv("P1,tbi,2021-03-04,31,male,2", head=HEAD + ",gcs_score")}
    c["val_tbsa_over_100"] = {"export.csv": csv("P1,burn,2021-03-04,31,male,140",
                                                head=HEAD + ",tbsa_burned_percent")}
    c["val_unknown_extra_columns"] = {"export.csv": good(head=HEAD).replace(HEAD, HEAD + ",favourite_colour")
                                      .replace("male\n", "male,blue\n")}
    # --- excel -------------------------------------------------------------------------------------
    c["xlsx_ok"] = {"export.xlsx": xlsx(frame())}
    c["xlsx_truncated"] = {"export.xlsx": xlsx(frame())[:700]}
    c["xlsx_formulas_no_cache"] = {"export.xlsx": xlsx_formulas()}
    c["xlsx_two_sheets"] = {"export.xlsx": xlsx(frame(), notes=pd.DataFrame({"a": [1]}))}
    c["xlsx_serial_dates"] = {"export.xlsx": xlsx_serial_dates()}
    c["xlsx_empty_sheet"] = {"export.xlsx": xlsx(pd.DataFrame())}
    c["xlsx_is_csv"] = {"export.xlsx": good()}
    c["xlsx_random_zip"] = {"export.xlsx": zipfile_bytes()}
    # --- statistical packages ---------------------------------------------------------------------
    c["dta_ok"] = {"export.dta": stat_file("dta")}
    c["dta_v114"] = {"export.dta": stat_file("dta", version=114)}
    # Stata 13 (117) and 14-16 (118) files as Stata writes them, and R's foreign::write.dta format 110: a %td
    # date and a value-labelled sex (a factor in R), read back to the values of frame() (test_stata_versions)
    for version in (117, 118):
        c[f"dta_v{version}"] = {"export.dta": stat_file("dta", dated(), version=version, convert_dates={"index_date": "td"})}
    c["dta_v110"] = {"export.dta": dta_110(dated())}
    c["dta_truncated"] = {"export.dta": stat_file("dta")[:300]}
    c["dta_is_text"] = {"export.dta": good()}
    c["sav_ok"] = {"export.sav": stat_file("sav")}
    c["sav_truncated"] = {"export.sav": stat_file("sav")[:200]}
    c["sav_value_labels"] = {"export.sav": stat_file(
        "sav", frame().assign(sex=[1.0, 2.0] * 3), variable_value_labels={"sex": {1.0: "male", 2.0: "female"}})}
    c["xpt_is_garbage"] = {"export.xpt": b"HEADER RECORD*******" + bytes(200)}
    c["parquet_is_text"] = {"export.parquet": good()}
    c["unknown_extension"] = {"export.xyz": good()}
    # --- study folders: export.toml and mapping ---------------------------------------------------
    c["toml_invalid"] = {"export.toml": "[[episodes]\npath = 'episodes.csv'\n", "episodes.csv": good()}
    c["toml_missing_file"] = {"export.toml": TOML_EXPORT}
    c["toml_path_parent"] = {"export.toml": '[[episodes]]\npath = "../episodes.csv"\n'}
    c["toml_path_absolute"] = {"export.toml": '[[episodes]]\npath = "/etc/passwd"\n'}
    c["toml_path_dot"] = {"export.toml": '[[episodes]]\npath = "."\n', "episodes.csv": good()}
    c["toml_mapping_dot"] = {"export.toml": TOML_EXPORT + 'mapping = "."\n', "episodes.csv": good()}
    c["toml_unknown_key"] = {"export.toml": TOML_EXPORT + 'colour = "blue"\n', "episodes.csv": good()}
    c["toml_path_not_string"] = {"export.toml": "[[episodes]]\npath = 7\n", "episodes.csv": good()}
    c["toml_no_episodes"] = {"export.toml": "[meta]\nname = 'x'\n", "episodes.csv": good()}
    c["toml_non_utf8"] = {"export.toml": '[[episodes]]\npath = "épisodes.csv"\n'.encode("latin-1")}
    c["toml_two_exports_ok"] = {"export.toml": TOML_EXPORT + '[[episodes]]\npath = "more.csv"\nsite = "B"\n',
                                "episodes.csv": good(), "more.csv": csv("Q1,tha,2021-03-04,61,male")}
    c["toml_mapping_outside"] = {"export.toml": TOML_EXPORT + 'mapping = "../m.toml"\n', "episodes.csv": good()}
    c["mapping_invalid_toml"] = {"export.toml": TOML_EXPORT + 'mapping = "m.toml"\n', "episodes.csv": good(),
                                 "m.toml": "[columns\n"}
    c["mapping_unknown_target"] = {"export.toml": TOML_EXPORT + 'mapping = "m.toml"\n',
                                   "episodes.csv": good(head=HEAD.replace("sex", "gender")),
                                   "m.toml": '[columns]\nsexx = "gender"\n'}
    c["mapping_value_not_code"] = {"export.toml": TOML_EXPORT + 'mapping = "m.toml"\n', "episodes.csv": good(),
                                   "m.toml": '[values.sex]\nM = "mle"\n'}
    c["mapping_two_sources_one_target"] = {"export.toml": TOML_EXPORT + 'mapping = "m.toml"\n',
                                           "episodes.csv": good(head=HEAD + ",gender").replace("male\n",
                                                                                               "male,m\n"),
                                           "m.toml": '[columns]\nsex = "gender"\n'}
    c["mapping_wrong_type"] = {"export.toml": TOML_EXPORT + 'mapping = "m.toml"\n', "episodes.csv": good(),
                               "m.toml": 'columns = 5\n'}
    c["mapping_date_format_bad"] = {"export.toml": TOML_EXPORT + 'mapping = "m.toml"\n', "episodes.csv": good(),
                                    "m.toml": '[dates]\nformat = 17\n'}
    c["assessments_missing_columns"] = {"export.toml": TOML_EXPORT + '[assessments]\npath = "a.csv"\n',
                                        "episodes.csv": good(), "a.csv": "patient_id,when\nP1,2021-04-01\n"}
    c["assessments_unknown_patient"] = {"export.toml": TOML_EXPORT + '[assessments]\npath = "a.csv"\n',
                                        "episodes.csv": good(),
                                        "a.csv": "patient_id,date,test,result\nZ9,2021-04-01,xray,positive\n"}
    c["assessments_bad_result"] = {"export.toml": TOML_EXPORT + '[assessments]\npath = "a.csv"\n', "episodes.csv": good(),
                                   "a.csv": "patient_id,date,test,result\nP1,2021-04-01,xray,perhaps\n"}
    # --- databases ---------------------------------------------------------------------------------
    c["sql_drop_table"] = {"cohort.db": sqlite_db()}
    c["sql_vacuum_into"] = {"cohort.db": sqlite_db()}
    c["sql_attach"] = {"cohort.db": sqlite_db()}
    c["sql_pragma_write"] = {"cohort.db": sqlite_db()}
    c["sql_two_statements"] = {"cohort.db": sqlite_db()}
    c["sql_unknown_table"] = {"cohort.db": sqlite_db()}
    c["sql_select_ok"] = {"cohort.db": sqlite_db()}
    c["sql_not_a_database"] = {"cohort.db": good()}
    c["sql_recursive_never_ends"] = {"cohort.db": sqlite_db()}
    c["sql_one_column"] = {"cohort.db": sqlite_db()}
    # --- analysis specs ---------------------------------------------------------------------------
    c["spec_invalid_toml"] = {"analysis.toml": "[analysis\n", "episodes.csv": SPEC_DATA}
    c["spec_non_utf8"] = {"analysis.toml": spec().replace('"?"', '"Zürich?"').encode("latin-1"),
                          "episodes.csv": SPEC_DATA}
    c["spec_unknown_key"] = {"analysis.toml": spec(replace=("horizon_days", "horizon_dayz")), "episodes.csv": SPEC_DATA}
    c["spec_unknown_section_type"] = {"analysis.toml": spec(replace=('"proportion"', '"proportoin"')),
                                      "episodes.csv": SPEC_DATA}
    c["spec_horizon_inf"] = {"analysis.toml": spec(replace=("= 365", "= inf")), "episodes.csv": SPEC_DATA}
    c["spec_horizon_nan"] = {"analysis.toml": spec(replace=("= 365", "= nan")), "episodes.csv": SPEC_DATA}
    c["spec_horizon_negative"] = {"analysis.toml": spec(replace=("= 365", "= -5")), "episodes.csv": SPEC_DATA}
    c["spec_horizon_string"] = {"analysis.toml": spec(replace=("= 365", '= "a year"')), "episodes.csv": SPEC_DATA}
    c["spec_synthetic_n_true"] = {"analysis.toml": spec(replace=('path = "episodes.csv"',
                                                                 'synthetic = { scenario = "tha_prophylaxis", n = true, seed = 1 }'))}
    c["spec_synthetic_n_huge"] = {"analysis.toml": spec(replace=('path = "episodes.csv"',
                                                                 'synthetic = { scenario = "tha_prophylaxis", n = 100000000000000000000000000000, seed = 1 }'))}
    c["spec_synthetic_seed_negative"] = {"analysis.toml": spec(replace=('path = "episodes.csv"',
                                                                        'synthetic = { scenario = "tha_prophylaxis", n = 100, seed = -4 }'))}
    c["spec_synthetic_fault_rate_one"] = {"analysis.toml": spec(replace=('path = "episodes.csv"',
                                                                         'synthetic = { scenario = "tha_prophylaxis", n = 100, seed = 1, fault_rate = 1.0 }'))}
    c["spec_synthetic_unknown_scenario"] = {"analysis.toml": spec(replace=('path = "episodes.csv"',
                                                                           'synthetic = { scenario = "nope", n = 100, seed = 1 }'))}
    c["spec_data_outside"] = {"analysis.toml": spec(replace=('"episodes.csv"', '"../episodes.csv"'))}
    c["spec_data_missing"] = {"analysis.toml": spec()}
    c["spec_data_path_dot"] = {"analysis.toml": spec(replace=('"episodes.csv"', '"."')), "episodes.csv": SPEC_DATA}
    c["spec_criteria_python"] = {"analysis.toml": spec('\n[[criteria]]\nname = "x"\nkeep = "__import__(\'os\').system(\'true\')"\n'),
                                 "episodes.csv": SPEC_DATA}
    c["spec_criteria_unknown_column"] = {"analysis.toml": spec('\n[[criteria]]\nname = "x"\nkeep = "bmi > 30"\n'),
                                         "episodes.csv": SPEC_DATA}
    c["spec_threshold_negative"] = {"analysis.toml": spec("\n[report]\nsmall_cell_threshold = -1\n"),
                                    "episodes.csv": SPEC_DATA}
    c["spec_ci_level_bad"] = {"analysis.toml": spec("\n[report]\nci_level = 95\n"), "episodes.csv": SPEC_DATA}
    c["spec_no_sections"] = {"analysis.toml": spec(replace=(SPEC[SPEC.index("[[section]]"):], "")),
                             "episodes.csv": SPEC_DATA}
    c["spec_duplicate_section_names"] = {"analysis.toml": spec('\n[[section]]\ntype = "proportion"\nname = "ho_by_sex"\nevent = "ho"\n'),
                                         "episodes.csv": SPEC_DATA}
    c["spec_empty"] = {"analysis.toml": ""}
    # --- command-line arguments: command.txt holds the argv, one per line ({folder}: the case's scratch copy) --
    simulate = ["simulate", "tha_prophylaxis", "-q", "-o", "{folder}/out"]
    c["cli_simulate_n_huge"] = {"command.txt": lines(*simulate, "--reps", "2", "--n", "1000000000000")}
    c["cli_simulate_n_negative"] = {"command.txt": lines(*simulate, "--reps", "2", "--n", "-5")}
    c["cli_simulate_reps_huge"] = {"command.txt": lines(*simulate, "--reps", "1000000000000")}
    c["cli_simulate_reps_zero"] = {"command.txt": lines(*simulate, "--reps", "0")}
    c["cli_synth_n_huge"] = {"command.txt": lines("synth", "tha_prophylaxis", "-n", "1000000000000", "--seed", "1",
                                                  "--out", "{folder}/out")}
    return c


def lines(*args: str) -> str:
    return "\n".join(args) + "\n"


def zipfile_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(entry("readme.txt"), "not a workbook")
    return buf.getvalue()


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise SystemExit("usage: python tests/hostile/make_corpus.py [DIR]")
    os.environ["OPENPYXL_LXML"] = "False"  # read by openpyxl when imported (below, by the writers)
    import openpyxl.xml
    if openpyxl.xml.LXML:
        raise SystemExit("openpyxl was imported before OPENPYXL_LXML was set: run this file as a script")
    out = Path(argv[0]) if argv else CORPUS
    if out == CORPUS and CORPUS.exists():
        shutil.rmtree(CORPUS)
    elif out.exists():
        raise SystemExit(f"{out} exists; give a folder that does not")
    made = cases()
    for case, files in made.items():
        folder = out / case
        folder.mkdir(parents=True)
        for name, content in files.items():
            (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    print(f"{len(made)} cases written to {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
