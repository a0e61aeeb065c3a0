"""Check that `dvc plots show`'s HTML report renders: curves drawn and figures loaded.

DVC's report loads vega, vega-lite and vega-embed from a CDN. On a machine without internet,
point --vega-dir at a folder holding node_modules/{vega,vega-lite,vega-embed} (`npm install
vega@5 vega-lite@5 vega-embed@6`); the script rewrites the script tags to those files, opens the page
in headless Chromium, and counts rendered charts (SVG/canvas) and loaded images.

    dvc plots show -o /tmp/report
    python tools/render_report.py /tmp/report/index.html --vega-dir /tmp/vega --screenshot /tmp/report.png
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

CDN = re.compile(r'src="https://cdn\.jsdelivr\.net/npm/(vega|vega-lite|vega-embed)@[^"]*"')
PROBE = """
<script>
window.addEventListener('load', () => setTimeout(() => {
  const charts = [...document.querySelectorAll('.vega-embed')].filter(e => e.querySelector('svg, canvas')).length;
  const images = [...document.images].filter(i => i.complete && i.naturalWidth > 0).length;
  document.title = 'RENDERED ' + JSON.stringify({charts, images, total_images: document.images.length});
}, 3000));
</script>
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("html", type=Path)
    parser.add_argument("--vega-dir", type=Path, help="folder with node_modules/vega, vega-lite, vega-embed")
    parser.add_argument("--screenshot", type=Path)
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    parser.add_argument("--expect", nargs="*", default=[],
                        help="chart titles (substrings) that must be among the rendered charts, e.g. "
                             "'leaf level' (the overlays) 'dvclive/' (dvclive's per-variant curves)")
    args = parser.parse_args()
    html = args.html.read_text()
    specs = html.count("vegaEmbed(")
    titles = re.findall(r'"title": (?:\{"text": )?"([^"]*)"', html)  # chart and axis titles of the specs
    if args.vega_dir:
        local = {"vega": "vega/build/vega.min.js", "vega-lite": "vega-lite/build/vega-lite.min.js",
                 "vega-embed": "vega-embed/build/vega-embed.min.js"}
        html = CDN.sub(lambda m: f'src="file://{(args.vega_dir / "node_modules" / local[m.group(1)]).resolve()}"', html)
    page = args.html.with_name("rendered_check.html")
    page.write_text(html.replace("</body>", PROBE + "</body>"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", "--allow-file-access-from-files",
             "--virtual-time-budget=15000"]
    dom = subprocess.run([args.chromium, *flags, "--dump-dom", page.resolve().as_uri()], capture_output=True,
                         text=True, timeout=120).stdout
    found = re.search(r"<title>RENDERED (\{.*?\})</title>", dom, re.S)
    if args.screenshot:
        subprocess.run([args.chromium, *flags, f"--screenshot={args.screenshot.resolve()}", "--window-size=1400,4000",
                        page.resolve().as_uri()], capture_output=True, timeout=120)
    if not found:
        print("the page did not finish rendering", file=sys.stderr)
        return 1
    result = json.loads(found.group(1))
    print(f"charts rendered: {result['charts']}/{specs}, images loaded: {result['images']}/{result['total_images']}")
    missing = [e for e in args.expect if not any(e in t for t in titles)]
    for e in args.expect:
        print(f"  expected chart '{e}': {'missing' if e in missing else 'present'}")
    ok = result["charts"] == specs > 0 and result["images"] == result["total_images"] > 0 and not missing
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
