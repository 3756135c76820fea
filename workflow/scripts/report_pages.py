"""The pages of the Snakemake report: each results page (Markdown) as a standalone HTML page with its tables
rendered, each figure copied beside them, and a provenance page (the workflow configuration, and the commits,
devices and package versions recorded in the ``run.json`` of every run of the plan)."""

import html
import json
import shutil
import sys
from collections import Counter
from pathlib import Path

import markdown
import yaml

STYLE = (
    "<style>body{font-family:sans-serif;margin:1.5em;max-width:110em}table{border-collapse:collapse;"
    "margin:1em 0;font-size:90%}th,td{border:1px solid #bbb;padding:.25em .5em;vertical-align:top}"
    "th{background:#eef}blockquote{background:#fee;margin:0;padding:.2em 1em}code{background:#f4f4f4}</style>"
)


def page(title: str, body_html: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>{STYLE}</head>"
        f"<body>{body_html}</body></html>\n"
    )


def render(md_file: str) -> str:
    """A results page as HTML. Raw HTML in the page is shown as text, never passed through (the pages escape every
    name they print, lrcbert.results.md; this holds even for a page that did not)."""
    text = Path(md_file).read_text(encoding="utf-8")
    converter = markdown.Markdown(extensions=["tables", "fenced_code"])
    converter.preprocessors.deregister("html_block")
    converter.inlinePatterns.deregister("html")
    return page(Path(md_file).stem, converter.convert(text))


def provenance(config: dict, plan_file: str) -> str:
    plan = json.loads(Path(plan_file).read_text())
    commits, devices, versions, finished = Counter(), Counter(), {}, 0
    for job in plan["jobs"]:
        f = Path(job["run"]) / "run.json"
        if not f.is_file():
            continue
        r = json.loads(f.read_text())
        finished += 1
        commits[str(r.get("git_commit"))] += 1
        devices[str(r.get("device"))] += 1
        for k, v in (r.get("versions") or {}).items():
            versions.setdefault(k, Counter())[str(v)] += 1
    rows = lambda c: "".join(f"<tr><td><code>{html.escape(k)}</code></td><td>{n}</td></tr>" for k, n in c.most_common())
    body = [
        f"<h1>Provenance</h1><p>{finished} of {len(plan['jobs'])} training runs of the plan have a run.json.</p>",
        "<h2>Commits of the runs</h2><table><tr><th>commit</th><th>runs</th></tr>",
        rows(commits),
        "</table>",
        "<h2>Devices</h2><table><tr><th>device</th><th>runs</th></tr>",
        rows(devices),
        "</table>",
        "<h2>Package versions</h2><table><tr><th>package</th><th>version (runs)</th></tr>",
        "".join(
            f"<tr><td>{html.escape(k)}</td><td>"
            + ", ".join(f"{html.escape(v)} ({n})" for v, n in c.most_common())
            + "</td></tr>"
            for k, c in sorted(versions.items())
        ),
        "</table>",
        "<h2>Workflow configuration</h2><pre>",
        html.escape(yaml.safe_dump(config, sort_keys=False)),
        "</pre>",
    ]
    return page("provenance", "".join(body))


if __name__ == "__main__":
    smk = snakemake  # noqa: F821
    with open(smk.log[0], "w") as log:
        sys.stdout = sys.stderr = log
        for md, out in zip(smk.input.pages, smk.output.pages):
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            Path(out).write_text(render(md), encoding="utf-8")
        for png, out in zip(smk.input.figures, smk.output.figures):
            shutil.copyfile(png, out)
        Path(smk.output.provenance).write_text(provenance(dict(smk.params.config), smk.input.plan), encoding="utf-8")
        print(f"{len(smk.output.pages)} pages, {len(smk.output.figures)} figures, provenance")
