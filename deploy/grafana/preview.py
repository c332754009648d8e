#!/usr/bin/env python3
"""Renders deploy/grafana/rmmguard.json's panels as a static HTML page, from a real Prometheus.

Grafana is not packaged in Debian, so this is how docs/dashboard.png is made: each panel's own
PromQL queries are run against Prometheus's HTTP API (query_range for time series, instant
queries for stats, bar gauges and tables), and drawn as inline SVG at the panel's grid position.
It is a faithful rendering of the dashboard's queries on real data, not Grafana's look.

Usage: preview.py PROMETHEUS_URL START END STEP OUT.html
"""
import html
import json
import math
import os
import sys
import urllib.parse
import urllib.request

COLORS = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9",
          "#fade2a", "#96d98d", "#ffa6b0", "#c0d8ff", "#ffb357"]


def get(base, path, **params):
    url = base + path + "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=30) as r:
        v = json.load(r)
    if v.get("status") != "success":
        raise SystemExit(f"query failed: {v}")
    return v["data"]["result"]


def subst(expr, rng, step):
    return (expr.replace("$__rate_interval", f"{max(4 * step, 4)}s")
            .replace("$__range", f"{rng}s")
            .replace('instance=~"$instance"', 'instance=~".*"'))


def legend(fmt, metric):
    if not fmt:
        return ",".join(f"{k}={v}" for k, v in metric.items() if k not in ("__name__", "job"))
    out = fmt
    for k, v in metric.items():
        out = out.replace("{{" + k + "}}", v)
    return out


def fmt_value(v, unit):
    if v is None or math.isnan(v):
        return "-"
    if unit == "s":
        for u, d in (("s", 1), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
            if abs(v) >= d or u == "ns":
                return f"{v / d:.3g} {u}"
    if unit == "bytes":
        for u, d in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
            if abs(v) >= d:
                return f"{v / d:.3g} {u}"
        return f"{v:.0f} B"
    suffix = {"pps": " p/s", "bps": "b/s"}.get(unit, "")
    for u, d in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= d:
            return f"{v / d:.3g} {u}{suffix}"
    return f"{v:.3g}{suffix}"


def timeseries(panel, base, start, end, step, w, h):
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
    series = []
    for t in panel["targets"]:
        for s in get(base, "/api/v1/query_range", query=subst(t["expr"], end - start, step),
                     start=start, end=end, step=step):
            pts = [(float(a), float(b)) for a, b in s["values"] if b not in ("NaN", "+Inf", "-Inf")]
            if pts:
                series.append((legend(t.get("legendFormat", ""), s["metric"]), pts))
    pw, ph, left, top = w - 70, h - 70, 60, 8
    ymax = max([p[1] for _, pts in series for p in pts] + [0]) or 1
    out = [f'<svg width="{w}" height="{h}">']
    for i in range(5):
        y = top + ph - ph * i / 4
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#2c3235"/>')
        out.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">'
                   f'{html.escape(fmt_value(ymax * i / 4, unit))}</text>')
    for i, (name, pts) in enumerate(series):
        c = COLORS[i % len(COLORS)]
        xy = " ".join(f"{left + pw * (x - start) / (end - start):.1f},"
                      f"{top + ph - ph * y / ymax:.1f}" for x, y in pts)
        out.append(f'<polyline points="{xy}" fill="none" stroke="{c}" stroke-width="1.5"/>')
    lx = left
    for i, (name, _) in enumerate(series[:8]):
        c = COLORS[i % len(COLORS)]
        out.append(f'<rect x="{lx}" y="{top + ph + 14}" width="10" height="4" fill="{c}"/>'
                   f'<text x="{lx + 14}" y="{top + ph + 20}">{html.escape(name[:28])}</text>')
        lx += 14 + 7 * min(len(name), 28) + 12
    if not series:
        out.append(f'<text x="{w / 2}" y="{h / 2}" text-anchor="middle">No data</text>')
    out.append("</svg>")
    return "".join(out)


def instant(panel, base, end, rng):
    rows = []
    for t in panel["targets"]:
        for s in get(base, "/api/v1/query", query=subst(t["expr"], rng, 15), time=end):
            rows.append((legend(t.get("legendFormat", ""), s["metric"]), float(s["value"][1]), s["metric"]))
    return rows


def render(dash, base, start, end, step):
    unit_px = 46
    cells = []
    for p in dash["panels"]:
        g = p["gridPos"]
        w, h = g["w"] * unit_px - 8, g["h"] * 30 - 36
        unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
        if p["type"] == "timeseries":
            body = timeseries(p, base, start, end, step, w, h)
        elif p["type"] == "stat":
            rows = instant(p, base, end, end - start)
            v = rows[0][1] if rows else None
            maps = p.get("fieldConfig", {}).get("defaults", {}).get("mappings", [])
            text = fmt_value(v, unit)
            for m in maps:
                opt = m.get("options", {}).get(str(int(v)) if v is not None else "")
                if opt:
                    text = opt["text"]
            body = f'<div class="stat">{html.escape(text)}</div>'
        elif p["type"] == "bargauge":
            rows = sorted(instant(p, base, end, end - start), key=lambda r: -r[1])
            mx = max([r[1] for r in rows] + [1])
            body = "".join(
                f'<div class="bar"><span>{html.escape(n)}</span><i style="width:{60 * v / mx:.1f}%"></i>'
                f'<b>{fmt_value(v, unit)}</b></div>' for n, v, _ in rows[:10])
        else:
            rows = instant(p, base, end, end - start)
            keys = sorted({k for _, _, m in rows for k in m if k not in ("__name__", "job")})
            body = "<table><tr>" + "".join(f"<th>{html.escape(k)}</th>" for k in keys) + "</tr>"
            for _, _, m in rows:
                body += "<tr>" + "".join(f"<td>{html.escape(m.get(k, ''))}</td>" for k in keys) + "</tr>"
            body += "</table>"
        cells.append(
            f'<div class="panel" style="left:{g["x"] * unit_px}px;top:{g["y"] * 30}px;'
            f'width:{w}px;height:{g["h"] * 30 - 8}px"><h3>{html.escape(p["title"])}</h3>{body}</div>')
    height = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dash["panels"]) * 30
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(dash['title'])}</title>
<style>
body{{background:#111217;color:#ccccdc;font-family:'DejaVu Sans',sans-serif;margin:12px}}
h1{{font-size:16px;margin:0 0 10px}} .note{{color:#8e8e8e;font-size:11px}}
.grid{{position:relative;height:{height}px;width:{24 * unit_px}px}}
.panel{{position:absolute;background:#181b1f;border:1px solid #2c3235;border-radius:3px;overflow:hidden}}
.panel h3{{font-size:12px;margin:6px 8px;font-weight:500}}
svg text{{fill:#9fa7b3;font-size:10px}}
.stat{{font-size:30px;color:#73bf69;text-align:center;margin-top:14px;font-weight:bold}}
.bar{{display:flex;align-items:center;font-size:11px;margin:3px 8px}}
.bar span{{width:110px}} .bar i{{display:block;height:12px;background:linear-gradient(90deg,#37872d,#f2cc0c)}}
.bar b{{margin-left:6px;font-weight:normal}}
table{{font-size:11px;margin:0 8px;border-collapse:collapse}} td,th{{padding:2px 8px;text-align:left;border-bottom:1px solid #2c3235}}
</style></head><body>
<h1>{html.escape(dash['title'])} <span class="note">— the dashboard's queries on live Prometheus data,
rendered by deploy/grafana/preview.py (not Grafana)</span></h1>
<div class="grid">{''.join(cells)}</div></body></html>"""


def main():
    base, start, end, step, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "rmmguard.json")) as f:
        dash = json.load(f)
    with open(out, "w") as f:
        f.write(render(dash, base.rstrip("/"), start, end, step))


if __name__ == "__main__":
    main()
