"""pipeline.sources: readers, dialects, encodings, profiles, mapping files, file-level errors."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest

from pipeline.errors import ConfigError, InputError
from pipeline.sources import WORK_COLUMNS, SourceOptions, load_sources
from pipeline.sources.profiles import PROFILES

SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"
FCM = "c" + "A" * 21 + ":APA91b" + "x" * 134
HEADER = "customer_id,device_token,platform,model,os_version,updated_at\n"


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def load(*paths: Path | str, **kw) -> pl.DataFrame:
    return load_sources(list(paths), SourceOptions(**kw)).frame


def test_generic_csv_columns_and_types(tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", HEADER + f"00123,{FCM},android,Pixel 8,14,2026-11-01\n")
    sf = load_sources([f], SourceOptions())
    assert sf.frame.columns == list(WORK_COLUMNS)
    assert sf.frame.schema["row_id"] == pl.Int64 and sf.frame.schema["source_row"] == pl.Int64
    row = sf.frame.row(0, named=True)
    assert row["customer_id"] == "00123"  # leading zeros kept
    assert row["source_file"] == str(f) and row["source_row"] == 1 and row["row_id"] == 0
    assert sf.files[0].profile == "generic" and sf.files[0].detected and sf.files[0].rows == 1


def test_camel_case_os_version_and_optional_updated_at(tmp_path: Path) -> None:
    f = write(
        tmp_path / "a.csv",
        f"customer_id,device_token,platform,model,osVersion\n1,{FCM},ios,iPhone15,2,17.2\n",
    )
    with pytest.raises(InputError):  # unquoted comma in the model makes the row ragged
        load(f)
    f = write(
        tmp_path / "b.csv",
        f'customer_id,device_token,platform,model,osVersion\n1,{FCM},ios,"iPhone15,2",17.2\n',
    )
    row = load(f).row(0, named=True)
    assert (
        row["os_version"] == "17.2" and row["model"] == "iPhone15,2" and row["activity_at"] is None
    )


@pytest.mark.parametrize(
    ("sep", "newline", "bom"),
    [(",", "\n", False), (";", "\r\n", True), ("\t", "\n", False), (";", "\n", False)],
)
def test_dialects(tmp_path: Path, sep: str, newline: str, bom: bool) -> None:
    lines = [
        sep.join(["customer_id", "device_token", "platform", "model", "os_version"]),
        sep.join(["007", FCM, "android", '"Pixel' + newline + '3a"', "13"]),
        sep.join(["008", FCM + "b", "ios", "iPhone", "17.4"]),
    ]
    f = write(tmp_path / "d.csv", ("\ufeff" if bom else "") + newline.join(lines) + newline)
    sf = load_sources([f], SourceOptions())
    df = sf.frame
    assert df.height == 2 and sf.files[0].delimiter == sep
    assert df["customer_id"].to_list() == ["007", "008"]
    assert df["model"][0].replace("\r", "") == "Pixel\n3a"  # quoted newline stays in the cell
    assert df["source_row"].to_list() == [1, 2]


def test_gzip_csv(tmp_path: Path) -> None:
    f = tmp_path / "a.csv.gz"
    f.write_bytes(gzip.compress((HEADER + f"1,{FCM},android,,,\n").encode()))
    assert load(f)["device_token"].to_list() == [FCM]


def test_parquet_keeps_strings(tmp_path: Path) -> None:
    f = tmp_path / "a.parquet"
    pl.DataFrame(
        {
            "customer_id": ["00042"],
            "device_token": [FCM],
            "platform": ["android"],
            "os_version": [14],
        }
    ).write_parquet(f)
    row = load(f).row(0, named=True)
    assert row["customer_id"] == "00042" and row["os_version"] == "14"


def test_cp1252_needs_flag_and_error_names_row(tmp_path: Path) -> None:
    f = write(
        tmp_path / "w.csv", HEADER + f"1,{FCM},android,,,\nJosé,{FCM}x,android,,,\n", "cp1252"
    )
    with pytest.raises(InputError) as err:
        load(f)
    msg = str(err.value)
    assert "line 3" in msg and "data row 2" in msg and "--encoding cp1252" in msg
    assert load(f, encoding="cp1252")["customer_id"].to_list() == ["1", "José"]


def test_directories_globs_and_several_vendors(tmp_path: Path) -> None:
    write(tmp_path / "a.csv", HEADER + f"1,{FCM},android,,,\n")
    write(tmp_path / "b.csv", HEADER + f"2,{FCM}b,android,,,\n")
    write(tmp_path / "notes.md", "ignored")
    df = load(tmp_path)
    assert df.height == 2 and df["row_id"].to_list() == [0, 1]
    assert df["source_row"].to_list() == [1, 1]
    assert load(str(tmp_path / "*.csv")).height == 2
    sf = load_sources(
        [SAMPLES / "airship_channels.csv", SAMPLES / "pushwoosh_devices.tsv"], SourceOptions()
    )
    assert [f.profile for f in sf.files] == ["airship", "pushwoosh"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "empty"),
        ("a,b\n1,2\n", "cannot tell which export"),
    ],
)
def test_file_level_errors(tmp_path: Path, text: str, needle: str) -> None:
    f = write(tmp_path / "x.csv", text)
    with pytest.raises(InputError, match=needle):
        load(f)


def test_ragged_row_is_named(tmp_path: Path) -> None:
    f = write(tmp_path / "r.csv", HEADER + f"1,{FCM},android,,,\n2,{FCM},android,,,,extra\n")
    with pytest.raises(InputError, match="data row 2 has 7 fields"):
        load(f)


def test_missing_columns_lists_both_sides(tmp_path: Path) -> None:
    f = write(tmp_path / "x.csv", "customer_id,device_token\n1,t\n")
    with pytest.raises(InputError) as err:
        load(f, profile="generic")
    assert "platform" in str(err.value) and "['customer_id', 'device_token']" in str(err.value)


def test_missing_path_and_bad_profile(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="unknown profile"):
        load(tmp_path, profile="nosuch")


def test_same_file_twice_is_read_once(tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", HEADER + f"1,{FCM},android,,,\n")
    assert load(f, f, tmp_path).height == 1


# --- profiles ---------------------------------------------------------------------------------


def test_auto_detects_every_sample_vendor() -> None:
    sf = load_sources([SAMPLES], SourceOptions())
    picked = {Path(f.path).name: f.profile for f in sf.files}
    assert picked == {
        "airship_channels.csv": "airship",
        "braze_users.ndjson": "braze",
        "generic_devices.csv": "generic",
        "onesignal_export.csv.gz": "onesignal",
        "pushwoosh_devices.tsv": "pushwoosh",
    }
    assert all(f.detected for f in sf.files)


def test_onesignal_codes_and_opt_out(tmp_path: Path) -> None:
    hdr = "identifier,device_type,device_os,device_model,last_active,invalid_identifier,external_user_id\n"
    rows = f"{FCM},1,14,Pixel,2026-11-01 10:00:00,f,u1\nabc,0,17.4,iPhone,,t,u2\nx,13,,,,f,u3\n"
    df = load(write(tmp_path / "os.csv", hdr + rows))
    assert df["platform"].to_list() == ["android", "ios", "huawei"]
    assert df["platform_raw"].to_list() == ["1", "0", "13"]
    assert df["opted_in"].to_list() == ["true", "false", "true"]
    assert df["activity_at"][0] == "2026-11-01 10:00:00"


def test_pushwoosh_codes(tmp_path: Path) -> None:
    hdr = "hwid,push_token,userId,device_type,os_version,device_model\n"
    df = load(
        write(tmp_path / "pw.csv", hdr + f"h1,{FCM},0001,3,12,m\nh2,t,2,1,12.1.4,m\nh3,t,3,9,,\n")
    )
    assert df["platform"].to_list() == ["android", "ios", "amazon"]
    assert df["customer_id"][0] == "0001"


def test_airship_opt_in_or_installed_false(tmp_path: Path) -> None:
    hdr = "channel_id,device_type,push_address,named_user_id,opt_in,installed,ua_device_os\n"
    rows = "c1,android,t1,u1,true,true,12\nc2,android,t2,u2,false,true,12\nc3,ios,t3,u3,true,false,17\n"
    df = load(write(tmp_path / "ua.csv", hdr + rows))
    assert df["opted_in"].to_list() == ["true", "false", "false"]


def test_braze_ndjson_one_row_per_token(tmp_path: Path) -> None:
    users = [
        {"external_id": "u1", "push_tokens": [
            {"platform": "Android", "token": "a", "device_id": "d1", "notifications_enabled": True},
            {"platform": "iOS", "token": "b", "device_id": "d2", "notifications_enabled": False}],
         "devices": [{"device_id": "d2", "model": "iPhone15,2", "os": "iOS 17.2"},
                     {"device_id": "d1", "model": "Pixel", "os": "Android (Q)"}]},
        {"external_id": "u2", "push_tokens": [], "devices": []},
    ]  # fmt: skip
    f = tmp_path / "b.ndjson"
    f.write_text("\n".join(json.dumps(u) for u in users) + "\n")
    df = load(f)
    assert df["customer_id"].to_list() == ["u1", "u1", "u2"]
    assert df["source_row"].to_list() == [1, 1, 2]
    assert df["device_token"].to_list() == ["a", "b", None]  # a user without tokens keeps a row
    assert df["os_version"].to_list() == ["Android (Q)", "iOS 17.2", None]
    assert df["model"].to_list() == ["Pixel", "iPhone15,2", None]
    assert df["opted_in"].to_list() == ["true", "false", None]


def test_profiles_are_data() -> None:
    for name, prof in PROFILES.items():
        assert prof.name == name
        assert {"customer_id", "device_token", "platform"} <= set(prof.columns)
        assert prof.android_version in ("release", "api")


def test_mapping_file(tmp_path: Path) -> None:
    m = write(
        tmp_path / "m.toml",
        'android_version = "api"\n[columns]\ncustomer_id = "cliente"\ndevice_token = "tok"\n'
        '[constants]\nplatform = "android"\n[values.platform]\n[opt_out]\ncolumn = "baja"\nvalues = ["S"]\n',
    )
    f = write(tmp_path / "h.csv", f"cliente,tok,version,baja\n0099,{FCM},14,S\n0100,{FCM}x,34,N\n")
    sf = load_sources([f], SourceOptions(mapping_file=m))
    df = sf.frame
    assert df["customer_id"].to_list() == ["0099", "0100"]
    assert df["platform"].to_list() == ["android", "android"]
    assert df["opted_in"].to_list() == ["false", "true"]
    assert df["android_version_kind"].to_list() == ["api", "api"]
    assert sf.files[0].profile == "mapping:m.toml"


def test_mapping_file_beside_vendor_exports() -> None:
    m = SAMPLES / "homegrown" / "mapping.toml"
    sf = load_sources([SAMPLES / "homegrown" / "clientes.csv", SAMPLES / "airship_channels.csv"],
                      SourceOptions(mapping_file=m))  # fmt: skip
    assert [f.profile for f in sf.files] == ["mapping:mapping.toml", "airship"]


def test_bad_mapping_file(tmp_path: Path) -> None:
    m = write(tmp_path / "m.toml", "[columns]\nnot_a_column = 'x'\n")
    with pytest.raises(ConfigError, match="not_a_column"):
        load(tmp_path, mapping_file=m)
