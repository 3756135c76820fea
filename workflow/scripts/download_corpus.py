"""Write the general-distillation corpus: a hub text data set (English Wikipedia by default) as a text file with
one paragraph per line, which ``lrcbert general-distill`` reads through ``data.corpus``.

Run by the local rule ``download_corpus``. The data set is streamed, so the whole of it never has to fit on
disk twice; each article is split at line breaks, paragraphs shorter than ``min_chars`` characters (headings,
list items) are dropped, and writing stops after ``max_lines`` paragraphs when that is set.
"""

from pathlib import Path

from lrcbert.results import job_log


def paragraphs(texts, min_chars: int):
    for text in texts:
        for line in str(text).split("\n"):
            line = " ".join(line.split())
            if len(line) >= min_chars:
                yield line


def write_corpus(out: str | Path, texts, min_chars: int = 40, max_lines: int | None = None) -> int:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    n = 0
    with open(tmp, "w", encoding="utf-8") as f:
        for line in paragraphs(texts, min_chars):
            f.write(line + "\n")
            n += 1
            if n % 1_000_000 == 0:
                print(f"{n} paragraphs", flush=True)
            if max_lines and n >= max_lines:
                break
    tmp.replace(out)
    return n


def hub_texts(hub_id: str, hub_config: str | None, column: str):
    import datasets

    ds = datasets.load_dataset(hub_id, hub_config, split="train", streaming=True)
    for row in ds:
        yield row[column]


if __name__ == "__main__":
    with job_log(snakemake) as smk:  # noqa: F821
        p = smk.params
        n = write_corpus(smk.output[0], hub_texts(p.hub_id, p.hub_config, p.text_column), p.min_chars, p.max_lines)
        print(f"wrote {n} paragraphs to {smk.output[0]}")
