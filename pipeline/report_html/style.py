"""The page's CSS and colours. Inline, system fonts only: the report must open offline."""

from __future__ import annotations

# One colour per outcome, used by cards, badges, bars and charts alike.
OUTCOME_COLORS: dict[str, str] = {
    "succeeded": "#2e7d32",
    "skipped": "#78909c",
    "invalid": "#d89a00",
    "rejected": "#c62828",
    "failed": "#e65100",
    "aborted": "#6a1b9a",
}
UNKNOWN_COLOR = "#455a64"
ACCENT = "#1565c0"
ACCENT_2 = "#ef6c00"

CSS = """
:root { --ink:#1f2933; --muted:#616e7c; --line:#e4e7eb; --bg:#f5f7fa; --card:#fff; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif; }
main { max-width:1180px; margin:0 auto; padding:24px 28px 48px; }
header.top { display:flex; flex-wrap:wrap; align-items:baseline; gap:8px 16px; margin-bottom:6px; }
h1 { font-size:22px; margin:0; font-weight:650; }
h1 .runid { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-weight:500;
  font-size:17px; color:var(--muted); }
h2 { font-size:17px; margin:0 0 12px; font-weight:650; }
h3 { font-size:14px; margin:18px 0 8px; font-weight:650; color:#323f4b; }
section { background:var(--card); border:1px solid var(--line); border-radius:8px;
  padding:18px 20px; margin:16px 0; }
.muted { color:var(--muted); }
.pill { display:inline-block; padding:1px 9px; border-radius:999px; font-size:12px; font-weight:600;
  color:#fff; background:#52606d; vertical-align:middle; }
.pill.ok { background:#2e7d32; } .pill.warn { background:#d89a00; } .pill.bad { background:#c62828; }
.banner { border-radius:8px; padding:10px 14px; margin:12px 0; border:1px solid; }
.banner.warn { background:#fff8e1; border-color:#ffe082; }
.banner.bad { background:#ffebee; border-color:#ef9a9a; }
.cards { display:grid; grid-template-columns:repeat(auto-fill,minmax(140px,1fr)); gap:10px; }
.card { background:var(--card); border:1px solid var(--line); border-left:5px solid #52606d;
  border-radius:6px; padding:10px 12px; }
.card .k { font-size:12px; color:var(--muted); text-transform:uppercase; letter-spacing:.04em; }
.card .v { font-size:24px; font-weight:650; font-variant-numeric:tabular-nums; }
.card .s { font-size:12px; color:var(--muted); }
.stack { display:flex; height:14px; border-radius:7px; overflow:hidden; margin:14px 0 2px;
  background:var(--line); }
.stack span { display:block; height:100%; }
table { border-collapse:collapse; width:100%; font-variant-numeric:tabular-nums; }
th, td { text-align:left; padding:6px 10px; border-bottom:1px solid var(--line); vertical-align:top; }
th { font-size:12px; color:var(--muted); font-weight:600; text-transform:uppercase;
  letter-spacing:.03em; background:#fafbfc; }
tbody tr:nth-child(even) td { background:#fbfcfd; }
td.num, th.num { text-align:right; white-space:nowrap; }
td.mono, .mono { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:12.5px; }
td.wrap { overflow-wrap:anywhere; word-break:break-word; }
dl.meta { display:grid; grid-template-columns:max-content 1fr; gap:6px 18px; margin:0; }
dl.meta dt { color:var(--muted); }
dl.meta dd { margin:0; overflow-wrap:anywhere; }
.badge { display:inline-block; min-width:74px; text-align:center; padding:1px 8px; border-radius:4px;
  font-size:12px; font-weight:600; color:#fff; }
details { border:1px solid var(--line); border-radius:6px; margin:8px 0; background:#fff; }
details > summary { cursor:pointer; padding:8px 12px; list-style-position:inside; }
details > summary code { font-weight:600; }
details[open] > summary { border-bottom:1px solid var(--line); background:#fafbfc; }
details table { font-size:13px; }
table.samples { table-layout:fixed; }
table.samples td { overflow-wrap:anywhere; }
code { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:12.5px; }
.grid2 { display:grid; grid-template-columns:1fr 1fr; gap:18px; }
@media (max-width:900px) { .grid2 { grid-template-columns:1fr; } }
td.label { overflow-wrap:anywhere; }
td.barcell { width:38%; }
.bar { display:block; height:10px; border-radius:3px; min-width:2px; }
svg.chart { width:100%; height:auto; display:block; }
svg.chart text { font-size:11px; fill:#52606d; }
svg.chart text.axis { font-size:11.5px; fill:#323f4b; }
svg.chart .grid { stroke:#eef0f3; } svg.chart .axisline { stroke:#9aa5b1; }
svg.chart .marker { stroke-dasharray:4 3; stroke-width:1.2; }
svg.chart text.marker-label { font-size:11px; font-weight:600; }
.legend { font-size:12px; color:var(--muted); margin:4px 0 0; }
.legend i { display:inline-block; width:10px; height:10px; border-radius:2px; margin:0 5px 0 12px;
  vertical-align:-1px; }
.empty { color:var(--muted); font-style:italic; }
footer { color:var(--muted); font-size:12px; margin-top:18px; }
"""
