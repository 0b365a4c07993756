"""Generate the sample exports in sample_data/ (deterministic: same seed, same bytes).

    python sample_data/generate.py                 # rewrite the committed samples
    python sample_data/generate.py --big 1000000 /tmp/big.csv   # a large generic CSV for benchmarks

Every vendor file mixes good rows with the messy cases the pipeline must report rather than send:
APNs/Expo/Web Push tokens, emails in the token column, unsupported platforms, opted-out and stale
rows, duplicate tokens, odd version spellings, empty customer ids, unicode and slashes in ids.
Dates are anchored at ANCHOR, so rows become stale as real time moves past it; rerun the
generator (or pass --max-age 0) if the demo shows everything stale.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
import string
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

SEED = 20261201
ANCHOR = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HERE = Path(__file__).resolve().parent
URLSAFE = string.ascii_letters + string.digits + "_-"


class Gen:
    def __init__(self, seed: int = SEED) -> None:
        self.r = random.Random(seed)

    def chars(self, n: int, alphabet: str = URLSAFE) -> str:
        return "".join(self.r.choice(alphabet) for _ in range(n))

    def fcm(self) -> str:
        return self.r.choice("cdef") + self.chars(21) + ":APA91b" + self.chars(134)

    def gcm(self) -> str:
        return "APA91b" + self.chars(134)

    def apns(self) -> str:
        hexs = self.chars(64, "0123456789abcdef")
        style = self.r.randrange(3)
        if style == 1:
            return hexs.upper()
        if style == 2:  # old Objective-C description: "<8 hex 8 hex ...>"
            return "<" + " ".join(hexs[i : i + 8] for i in range(0, 64, 8)) + ">"
        return hexs

    def expo(self) -> str:
        return "ExponentPushToken[" + self.chars(22) + "]"

    def webpush(self) -> str:
        host = self.r.choice(
            ["fcm.googleapis.com/fcm/send", "updates.push.services.mozilla.com/wpush/v2"]
        )
        return f"https://{host}/{self.chars(60)}"

    def hms(self) -> str:
        return self.chars(8, string.digits) + self.chars(90, string.ascii_letters + string.digits)

    def when(self, max_days: int = 200) -> datetime:
        return ANCHOR - timedelta(days=self.r.randrange(max_days), seconds=self.r.randrange(86400))

    def stale(self) -> datetime:
        return ANCHOR - timedelta(days=300 + self.r.randrange(400))

    def customer(self, i: int) -> str:
        return f"{i:05d}" if i % 7 == 0 else f"C{100000 + i}"


ANDROID_MODELS = [
    "Pixel 8",
    "SM-S918B",
    "Samsung SM-G355H",
    "Redmi Note 12",
    "moto g(7)",
    "Pixel 3a",
]
IOS_MODELS = ["iPhone15,2", "iPhone10,1", "iPhone8,1", "iPad13,4"]
ANDROID_VERSIONS = ["14", "13", "12", "11", "10", "9", "8.1.0", "12L", "15", "16"]
IOS_VERSIONS = ["17.4.1", "17.2", "16.7.8", "18.1", "15.8"]


def iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def write_csv(path: Path, header: list[str], rows: list[list[str]], *, delimiter: str = ",",
              newline: str = "\n", bom: bool = False, encoding: str = "utf-8") -> bytes:  # fmt: skip
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter, lineterminator=newline, quoting=csv.QUOTE_MINIMAL)
    w.writerow(header)
    w.writerows(rows)
    data = ("\ufeff" if bom else "") + buf.getvalue()
    raw = data.encode(encoding)
    if path.suffix == ".gz":
        raw = gzip.compress(raw, mtime=0)  # mtime=0 keeps the bytes reproducible
    path.write_bytes(raw)
    return raw


def generic_rows(g: Gen, n: int) -> list[list[str]]:
    rows: list[list[str]] = []
    for i in range(n):
        plat = g.r.choice(["android"] * 6 + ["ios"] * 3 + ["web"])
        if plat == "android":
            row = [g.customer(i), g.fcm(), g.r.choice(["android", "Android", "ANDROID", "gcm"]),
                   g.r.choice(ANDROID_MODELS), g.r.choice(ANDROID_VERSIONS), iso(g.when())]  # fmt: skip
        elif plat == "ios":
            row = [g.customer(i), g.fcm(), g.r.choice(["ios", "iOS", "iPhone"]),
                   g.r.choice(IOS_MODELS), g.r.choice(IOS_VERSIONS), iso(g.when())]  # fmt: skip
        else:
            row = [
                g.customer(i),
                g.fcm(),
                "web",
                "",
                g.r.choice(["120", "121.0.6167.85"]),
                iso(g.when()),
            ]
        rows.append(row)
    # the messy cases, at fixed places so tests can count them
    messy = [
        ["", g.fcm(), "android", "Pixel 8", "14", iso(g.when())],  # empty customer
        ["   ", g.fcm(), "android", "Pixel 8", "14", iso(g.when())],  # blank customer
        ["C900001", g.apns(), "ios", "iPhone15,2", "iOS 17.2", iso(g.when())],  # APNs token
        ["C900002", g.apns(), "iOS", "iPhone10,1", "iPhone OS 17_4", iso(g.when())],  # APNs token
        ["C900003", g.fcm(), "blackberry", "Bold 9900", "7.1", iso(g.when())],  # unknown platform
        ["C900004", g.fcm(), "", "", "", iso(g.when())],  # missing platform
        ["C900005", "maria.lopez@example.com", "android", "Pixel 8", "14", iso(g.when())],  # email
        ["C900006", "+52 55 1234 5678", "android", "Pixel 8", "14", iso(g.when())],  # phone
        ["cliente/42", g.fcm(), "android", "SM-S918B", "13", iso(g.when())],  # slash in id
        ["José Ñúñez 東京", g.fcm(), "ios", "iPhone15,2", "17.4.1", iso(g.when())],  # unicode id
        ["C900007", g.expo(), "android", "Pixel 8", "14", iso(g.when())],  # Expo token
        ["C900008", g.webpush(), "web", "", "120", iso(g.when())],  # Web Push endpoint
        ["C900009", g.fcm(), "android", "Pixel 3a", "Tiramisu", iso(g.when())],  # codename
        ["C900010", g.fcm(), "android", "Pixel 3a", "Android (Q)", iso(g.when())],  # codename
        ["C900011", g.fcm(), "android", "Nexus 5X", "Oreo", iso(g.when())],  # ambiguous codename
        ["C900012", g.fcm(), "android", "Pixel 8", "banana", iso(g.when())],  # unknown version
        ["C900013", g.fcm(), "android", "", "", iso(g.when())],  # no model/os: still sent
        ["C900014", g.fcm(), "android", "Pixel 8", "14", iso(g.stale())],  # stale
        ["C900015", g.fcm(), "kindle", "KFTT", "", iso(g.when())],  # unsupported platform
        ["C900016", "  " + g.fcm() + " ", "android", "Pixel 8", "34", iso(g.when())],  # whitespace
        ["C900017", g.gcm(), "android", "Galaxy S4", "5.1", iso(g.when())],  # legacy GCM
        ["C900018", "not a token!", "android", "Pixel 8", "14", iso(g.when())],  # malformed
    ]
    dup = g.fcm()
    messy += [
        ["C900019", dup, "android", "Pixel 8", "14", "2026-10-01T08:00:00Z"],  # duplicate (older)
        ["C900020", dup, "android", "Pixel 8", "14", "2026-11-20T08:00:00Z"],  # duplicate (winner)
        ["C900021", dup, "android", "Pixel 8", "14", "2026-09-01"],  # duplicate (oldest)
    ]
    for k, row in enumerate(messy):
        rows.insert(7 + k * 9, row)
    return rows


GENERIC_HEADER = ["customer_id", "device_token", "platform", "model", "os_version", "updated_at"]


def onesignal(g: Gen, out: Path) -> None:
    header = ["id", "identifier", "session_count", "language", "timezone", "game_version", "device_os",
              "device_type", "device_model", "ad_id", "tags", "last_active", "playtime", "amount_spent",
              "created_at", "invalid_identifier", "badge_count", "external_user_id", "notification_types"]  # fmt: skip
    rows = []
    for i in range(90):
        code = g.r.choice(["1"] * 6 + ["0"] * 3 + ["5", "8", "2", "11", "13", "14", "17"])
        os_, model, token = "14", g.r.choice(ANDROID_MODELS), g.fcm()
        if code == "0":
            os_, model = g.r.choice(IOS_VERSIONS), g.r.choice(IOS_MODELS)
            token = g.fcm() if i % 5 else g.apns()  # old iOS SDKs exported APNs tokens
        elif code == "1":
            os_ = g.r.choice(["9", "10", "11", "12", "13", "14", "15", "8.1.0"])
        elif code in ("5", "8", "17"):
            os_, model = g.r.choice(["120", "121", "17"]), ""
            token = g.webpush() if i % 3 else g.fcm()
        elif code == "11":
            os_, model, token = "", "", f"user{i}@example.com"
        elif code == "14":
            os_, model, token = "", "", f"+5255{g.chars(8, string.digits)}"
        elif code == "13":
            token = g.hms()
        last = g.stale() if i % 17 == 0 else g.when()
        tags = json.dumps({"tier": g.r.choice(["gold", "silver"]), "note": 'says "hi", twice'})
        invalid = "t" if i % 11 == 0 else "f"
        rows.append([
            f"{g.chars(8, '0123456789abcdef')}-{i:04d}", token, str(g.r.randrange(1, 300)), "es",
            "-21600", "1.4.2", os_, code, model, "", tags, last.strftime("%Y-%m-%d %H:%M:%S"),
            str(g.r.randrange(9999)), "0.0", g.stale().strftime("%Y-%m-%d %H:%M:%S"), invalid, "0",
            g.customer(i) if i % 23 else "", "-2" if i % 29 == 5 else "1",
        ])  # fmt: skip
    write_csv(out / "onesignal_export.csv.gz", header, rows)


def airship(g: Gen, out: Path) -> None:
    header = ["channel_id", "device_type", "push_address", "named_user_id", "opt_in", "installed",
              "background", "created", "last_registration", "tags", "ua_device_model", "ua_device_os"]  # fmt: skip
    rows = []
    for i in range(70):
        dtype = g.r.choice(
            ["android"] * 5 + ["ios"] * 3 + ["amazon", "web", "email", "sms", "open"]
        )
        token, model, os_ = (
            g.fcm(),
            g.r.choice(ANDROID_MODELS),
            g.r.choice(["13.1.2", "12", "11", "14"]),
        )
        if dtype == "ios":
            token, model, os_ = (
                g.apns() if i % 4 == 0 else g.fcm(),
                g.r.choice(IOS_MODELS),
                "17.4.1",
            )
        elif dtype in ("email", "sms", "open"):
            token, model, os_ = (
                f"addr{i}@example.com" if dtype == "email" else f"+1555{i:07d}",
                "",
                "",
            )
        if i == 3:
            model = "Pixel\r\n3a"  # a quoted newline inside a cell
        opt_in = "false" if i % 9 == 0 else "true"
        installed = "false" if i % 13 == 0 else "true"
        last = g.stale() if i % 15 == 0 else g.when()
        rows.append([
            f"{g.chars(8, '0123456789abcdef')}-aaaa-bbbb-cccc-{i:012d}", dtype, token,
            f"nu-{i:04d}" if i % 19 else "", opt_in, installed, "true", iso(g.stale()), iso(last),
            "vip;beta", model, os_,
        ])  # fmt: skip
    # Excel-style export: semicolons, CRLF and a byte order mark
    write_csv(out / "airship_channels.csv", header, rows, delimiter=";", newline="\r\n", bom=True)


def braze(g: Gen, out: Path) -> None:
    lines = []
    for i in range(45):
        tokens, devices = [], []
        for k in range(0 if i % 10 == 0 else (2 if i % 4 == 0 else 1)):
            ios = (i + k) % 3 == 0
            dev = f"dev-{i}-{k}"
            tok = (g.apns() if i % 7 == 0 else g.fcm()) if ios else g.fcm()
            tokens.append({"app": "Shop", "platform": "iOS" if ios else "Android", "token": tok,
                           "device_id": dev, "notifications_enabled": i % 8 != 0})  # fmt: skip
            os_ = (
                g.r.choice(["iOS 17.2", "iOS 16.7.8"])
                if ios
                else g.r.choice(
                    ["Android (Q)", "Android 14", "Android (Tiramisu)", "13", "Android 8.1.0"]
                )
            )
            devices.append({"model": g.r.choice(IOS_MODELS if ios else ANDROID_MODELS), "os": os_,
                            "device_id": dev, "carrier": "Telcel"})  # fmt: skip
        user = {"external_id": f"{i:06d}" if i % 5 else f"br/{i}", "push_subscribe": "opted_in",
                "push_tokens": tokens, "devices": devices,
                "last_used_app": iso(g.when())}  # fmt: skip
        if i == 6:
            user["push_subscribe"] = "unsubscribed"
        lines.append(json.dumps(user, ensure_ascii=False))
    (out / "braze_users.ndjson").write_text("\n".join(lines) + "\n", encoding="utf-8")


def pushwoosh(g: Gen, out: Path, n: int = 50) -> list[list[str]]:
    rows = []
    for i in range(n):
        code = g.r.choice(["3"] * 5 + ["1"] * 3 + ["9", "17", "11", "8"])
        token, model, os_ = (
            g.fcm(),
            g.r.choice(ANDROID_MODELS),
            g.r.choice(["11", "12", "13", "14"]),
        )
        if code == "1":
            token, model, os_ = (
                g.apns() if i % 3 == 0 else g.fcm(),
                g.r.choice(IOS_MODELS),
                "12.1.4",
            )
        elif code == "17":
            token = g.hms()
        last = g.stale() if i % 12 == 0 else g.when()
        rows.append([f"hw{g.chars(30, '0123456789abcdef')}", token, f"{i:07d}", code, os_, model,
                     str(int(last.timestamp()))])  # fmt: skip
    return rows


PUSHWOOSH_HEADER = [
    "hwid",
    "push_token",
    "userId",
    "device_type",
    "os_version",
    "device_model",
    "last_update",
]


def homegrown(g: Gen, out: Path) -> None:
    """A home-grown table plus the mapping file that reads it (Spanish column names, S/N flags)."""
    d = out / "homegrown"
    d.mkdir(exist_ok=True)
    rows = [[f"{i:04d}", g.fcm() if i % 6 else g.apns(), "A" if i % 3 else "I",
             "14" if i % 3 else "17.2", "S" if i % 8 else "N"] for i in range(20)]  # fmt: skip
    write_csv(
        d / "clientes.csv", ["id_cliente", "token_push", "so", "version_so", "acepta_push"], rows
    )
    (d / "mapping.toml").write_text(
        "# masivo-sync validate sample_data/homegrown/clientes.csv --mapping sample_data/homegrown/mapping.toml\n"
        'base = "generic"\nandroid_version = "release"\n\n[columns]\ncustomer_id = "id_cliente"\n'
        'device_token = "token_push"\nplatform = "so"\nos_version = "version_so"\n\n'
        '[values.platform]\n"A" = "android"\n"I" = "ios"\n\n'
        '[opt_out]\ncolumn = "acepta_push"\nvalues = ["N"]\n',
        encoding="utf-8",
    )


def messy_encoding(g: Gen, out: Path) -> None:
    """Windows-1252 export (Excel on Windows): needs --encoding cp1252."""
    d = out / "cp1252"
    d.mkdir(exist_ok=True)
    rows = pushwoosh(g, d, 12)
    for k, row in enumerate(rows):
        row[2] = ["José", "Peña", "Müller", "Renée"][k % 4] + f"-{k}"
    write_csv(d / "pushwoosh_latin.csv", PUSHWOOSH_HEADER, rows, delimiter=";", encoding="cp1252")


def big(path: Path, n: int, seed: int = SEED) -> None:
    """A large generic CSV (for benchmarks); generation is streamed in blocks."""
    g = Gen(seed)
    pool = [g.fcm() for _ in range(2000)]
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(GENERIC_HEADER)
        for i in range(n):
            ios = i % 3 == 0
            # unique tokens: a pooled token with the row number appended keeps generation cheap
            w.writerow([g.customer(i), f"{pool[i % 2000]}{i}", "ios" if ios else "android",
                        IOS_MODELS[i % 4] if ios else ANDROID_MODELS[i % 6],
                        IOS_VERSIONS[i % 5] if ios else ANDROID_VERSIONS[i % 10],
                        (ANCHOR - timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ")])  # fmt: skip


def main(argv: list[str]) -> None:
    if argv[:1] == ["--big"]:
        big(Path(argv[2]), int(argv[1]))
        return
    out = Path(argv[0]) if argv else HERE
    out.mkdir(parents=True, exist_ok=True)
    g = Gen()
    write_csv(out / "generic_devices.csv", GENERIC_HEADER, generic_rows(g, 260))
    onesignal(g, out)
    airship(g, out)
    braze(g, out)
    write_csv(out / "pushwoosh_devices.tsv", PUSHWOOSH_HEADER, pushwoosh(g, out), delimiter="\t")
    homegrown(g, out)
    messy_encoding(g, out)


if __name__ == "__main__":
    main(sys.argv[1:])
