"""Read a Textual SVG snapshot back as text, cell by cell (to check what a snapshot shows without an SVG
renderer): python tests/helpers/svg_text.py tests/__snapshots__/test_app/*.svg"""
import re, html, sys
from rich.cells import cell_len


def svg_lines(s: str) -> list[str]:
    """The screen's rows as text, from the SVG source of a Textual screenshot."""
    rows = {}
    for m in re.finditer(r'<text class="[^"]*" x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>', s):
        x, y, t = float(m.group(1)), float(m.group(2)), html.unescape(re.sub('<[^>]+>', '', m.group(3)))
        rows.setdefault(y, []).append((x, t))
    out = []
    for y in sorted(rows):
        line = ""
        for x, t in sorted(rows[y]):
            col = round(x / 12.2)
            if cell_len(line) < col:
                line += " " * (col - cell_len(line))
            line += t.replace('\xa0', ' ')
        out.append(line)
    return out


if __name__ == "__main__":
    for p in sys.argv[1:]:
        print("=====", p.rsplit("/", 1)[-1])
        print("\n".join(svg_lines(open(p).read())))
