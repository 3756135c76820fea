"""GLUE test-server submission of one system and seed: the test predictions of the runs that dev selection chose
(one per task), copied under their GLUE file names into ``results/submissions/{system}/seed{seed}/`` and zipped
(``seed{seed}.zip``, the file the server takes). ``manifest.json`` in the folder (not in the zip) records where
each file came from. The server also expects files this suite does not produce (AX.tsv, the diagnostic set, and
WNLI.tsv): add them before uploading (docs/workflow.md, "Submitting to the GLUE server")."""

import json
import shutil
import zipfile
from pathlib import Path

from lrcbert.results import job_log, read_json


def build(dev_json: str, seed: str, folder: str | Path, zip_path: str | Path) -> dict:
    dev = read_json(dev_json)
    folder = Path(folder)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    manifest = {"system": dev["system"], "seed": seed, "files": {}, "missing": []}
    for entry in dev["tasks"].values():
        run = entry["seeds"].get(str(seed))
        for split in entry["splits"]:
            src = (run or {}).get("predictions", {}).get(split)
            if not src:
                manifest["missing"].append(split)
                continue
            dst = folder / Path(src).name
            shutil.copyfile(src, dst)
            manifest["files"][dst.name] = {
                "split": split,
                "source": src,
                "lr": entry["selected_lr"],
                "dev_score": run["scores"].get(split),
            }
    tmp = Path(zip_path).with_name(f".{Path(zip_path).name}.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for name in sorted(manifest["files"]):
            z.write(folder / name, arcname=name)
    tmp.replace(zip_path)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


if __name__ == "__main__":
    with job_log(snakemake) as smk:  # noqa: F821
        m = build(smk.input[0], smk.wildcards.seed, smk.output.folder, smk.output.zip)
        print(json.dumps(m, indent=2))
