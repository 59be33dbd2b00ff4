"""One table renderer for the reports minivgg prints (evaluation tables in
the shape of the paper's Tables 3-6, the layer summaries): CSV, Markdown or
aligned plain text from a header and rows of cells."""
import csv
import io

__all__ = ["render_table"]


def render_table(header, body, fmt, right=(), text_name="text"):
    """``header`` and ``body`` (rows of cells, any type) as ``fmt``: "csv",
    "markdown" or ``text_name`` (columns aligned by spaces). Columns whose
    index is in ``right`` are right-aligned (numbers). Ends with a newline."""
    if fmt == "csv":
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(header)
        w.writerows(body)
        return out.getvalue()
    if fmt == "markdown":
        lines = ["| " + " | ".join(header) + " |",
                 "|" + "|".join("---:" if j in right else "---" for j in range(len(header)))
                 + "|"]
        lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in body]
        return "\n".join(lines) + "\n"
    if fmt != text_name:
        raise ValueError(f"unknown format {fmt!r}; expected {text_name}, markdown or csv")
    widths = [max(len(str(r[j])) for r in [header] + body) for j in range(len(header))]
    lines = []
    for row in [header, ["-" * w for w in widths]] + body:
        lines.append("  ".join(str(v).rjust(w) if j in right else str(v).ljust(w)
                               for j, (v, w) in enumerate(zip(row, widths))).rstrip())
    return "\n".join(lines) + "\n"
