"""The `tintline` command. Subcommands parse arguments and call library functions; no logic lives here.

Errors meant for the user (bad arguments, bad input, missing datasets) are printed as one line, ``error: ...``,
with exit status 2; an interrupt exits with 130 after the current unit of work is safely stored.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .errors import UserError

# ----------------------------------------------------------------------------------------------- data


def cmd_data_import(a: argparse.Namespace) -> None:
    from .data.sources import import_source, resolve_source
    from .data.store import Store

    resolve_source(a.source)  # a bad SOURCE fails before DATASET is created, so no empty dataset is left behind
    with Store.create(a.dataset) as store:
        stats = import_source(store, a.source, extra_tags=a.tag)
        print(f"imported {a.source}: {stats['new']} new, {stats['known']} already stored ({stats['seen']} files)")


def cmd_data_build(a: argparse.Namespace) -> None:
    from .data.build import build
    from .data.store import Store

    with Store.open(a.dataset) as store:
        overrides = {"size": a.size} if a.size else {}
        if a.workers is not None:
            overrides["workers"] = a.workers
        if a.balance is not None:
            overrides["balance"] = a.balance
        cfg = store.load_config(overrides)
        summary = build(store, cfg)
    c, r, s = summary["counts"], summary["reasons"], summary["splits"]
    print(
        f"built {a.dataset}: {c.get('accepted', 0)} accepted, {c.get('rejected', 0)} rejected"
        f" ({', '.join(f'{k} {v}' for k, v in r.items()) or 'none'});"
        f" split train {s.get('train', 0)} / val {s.get('val', 0)} / test {s.get('test', 0)};"
        f" {summary['processed']} images processed this run"
    )


def cmd_data_crawl(a: argparse.Namespace) -> None:
    from .data.crawl import run_crawl
    from .data.store import Store

    with Store.create(a.dataset) as store:
        stats = run_crawl(
            store,
            site=a.site,
            api=a.api,
            tags=a.tags,
            exclude_tags=a.exclude_tags,
            rating=a.rating,
            limit=a.limit,
        )
    print("crawl finished: " + ", ".join(f"{k} {v}" for k, v in stats.items()))


def cmd_data_fetch(a: argparse.Namespace) -> None:
    from .data.crawl import run_fetch
    from .data.store import Store

    with Store.create(a.dataset) as store:
        stats = run_fetch(store, a.urls, tags=a.tag)
    print("fetch finished: " + ", ".join(f"{k} {v}" for k, v in stats.items()))


def cmd_data_list(a: argparse.Namespace) -> None:
    from .data.store import Store

    with Store.open(a.dataset) as store:
        q = (
            "SELECT i.id, i.sha256, i.status, i.reason, i.detail, i.split, i.dup_group, i.width, i.height,"
            " (SELECT origin FROM origins o WHERE o.sha256 = i.sha256 ORDER BY rowid LIMIT 1) AS origin,"
            " (SELECT group_concat(tag, ' ') FROM tags t WHERE t.sha256 = i.sha256) AS tags FROM images i WHERE 1=1"
        )
        params: list = []
        for col, val in (("status", a.status), ("reason", a.reason), ("split", a.split)):
            if val:
                q += f" AND i.{col} = ?"
                params.append(val)
        if a.tag:
            q += " AND EXISTS (SELECT 1 FROM tags t WHERE t.sha256 = i.sha256 AND t.tag = ?)"
            params.append(a.tag)
        for r in store.db.execute(q + " ORDER BY i.id", params):
            row = dict(r)
            row["tags"] = (row["tags"] or "").split()
            if a.json:
                print(json.dumps(row))
            else:
                why = f"{row['reason']} ({row['detail']})" if row["reason"] else ""
                print(f"{row['id']:6d} {row['status']:8s} {row['split'] or '-':5s} {why:50s} {row['origin']}")


def cmd_data_import_pairs(a: argparse.Namespace) -> None:
    from .data.sources import import_pairs
    from .data.store import Store

    for folder in (a.lines_dir, a.colors_dir):  # checked before DATASET is created (no empty dataset left behind)
        if not Path(folder).is_dir():
            raise UserError(f"{folder} is not a folder")
    with Store.create(a.dataset) as store:
        st = import_pairs(store, a.lines_dir, a.colors_dir, extra_tags=a.tag)
    print(f"imported {st['pairs']} line/color pairs ({st['new']} new images, {st['changed']} with new line art);"
          f" unmatched: {st['unmatched_lines']} line files, {st['unmatched_colors']} color files")


def cmd_data_tags(a: argparse.Namespace) -> None:
    from .data.store import Store

    with Store.open(a.dataset) as store:
        rows = store.tag_table()
    if a.json:
        for r in rows:
            print(json.dumps(r))
        return
    print(f"{'tag':32s} {'total':>6s} {'accepted':>8s} {'rejected':>8s} {'train':>6s} {'val':>5s} {'test':>5s}")
    for r in rows:
        print(f"{r['tag'][:32]:32s} {r['total']:6d} {r['accepted']:8d} {r['rejected']:8d} {r['train']:6d}"
              f" {r['val']:5d} {r['test']:5d}")


def cmd_data_report(a: argparse.Namespace) -> None:
    from .data.report import write_report
    from .data.store import Store

    with Store.open(a.dataset) as store:
        path = write_report(store, Path(a.out) if a.out else None)
    print(path)


def cmd_data_classify(a: argparse.Namespace) -> None:
    from .data.classifier import train_and_score
    from .data.store import Store

    with Store.open(a.dataset) as store:
        r = train_and_score(store, Path(a.labels) if a.labels else None, positive=a.positive)
    print(f"learned filter trained on {r['examples']} examples ({r['positives']} positive) from {r['source']};"
          f" training accuracy {r['train_accuracy']:.1%}; scored {r['scored']} images. Use it with"
          f" 'tintline data build {a.dataset}' after setting min_clf_score in dataset.yaml.")


def cmd_data_export(a: argparse.Namespace) -> None:
    from .data.export import export_shards
    from .data.store import Store

    with Store.open(a.dataset) as store:
        shards = export_shards(store, Path(a.out_dir), splits=a.split or None, shard_size=a.shard_size)
    n = sum(s["count"] for s in shards)
    print(f"exported {n} pairs to {len(shards)} shards in {a.out_dir}")


# ----------------------------------------------------------------------------------------------- model


def cmd_train(a: argparse.Namespace) -> None:
    from .config import build_config, load_train_config
    from .train.trainer import train

    overrides = list(a.set or [])
    if a.minutes is not None:
        overrides.append(f"train.minutes={a.minutes}")
    if a.max_steps is not None:
        overrides.append(f"train.max_steps={a.max_steps}")
    config = a.config
    saved = Path(a.run_dir) / "config.yaml"
    if a.resume and not config and saved.is_file():
        config = saved  # a resumed run keeps its own recipe; --set and --minutes still apply
    cfg = load_train_config(config, overrides)
    flags = {k: getattr(a, k) for k in ("init_from", "freeze_encoder", "devices", "precision")
             if getattr(a, k) is not None}
    if flags:  # validated like every other field (a path stays a string: not parsed as YAML)
        cfg = build_config(type(cfg), cfg.model_dump(mode="json"), {"train": flags}, where="command line")
    result = train(cfg, Path(a.dataset), Path(a.run_dir), resume=a.resume)
    if result.get("rank", 0) != 0:
        return  # DDP: the other processes finish quietly; rank 0 reports
    print(f"trained to step {result['step']} in {result['seconds']:.0f} s; checkpoint: {result['checkpoint']}")


def _is_run_dir(p: Path) -> bool:
    return p.is_dir() and any((p / n).exists() for n in ("model.safetensors", "generator.safetensors", "checkpoints"))


def cmd_colorize(a: argparse.Namespace) -> None:
    from .batch import ARCHIVE_SUFFIXES, colorize_batch, is_batch_input
    from .data.hints import load_hints
    from .inference import colorize_files

    model, inputs = a.model, list(a.inputs)
    m = Path(model)
    if (m.suffix.lower() in {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", *ARCHIVE_SUFFIXES}
            or (m.is_dir() and not _is_run_dir(m))):
        model, inputs = "default", [model, *inputs]  # an image, archive or page folder is never a model
    if not inputs:
        raise UserError("colorize needs at least one INPUT image, folder or archive")
    if a.gap is not None and a.gap < 0:
        raise UserError(f"--gap must be 0 (no gap closing) or a number of pixels, got {a.gap}")
    batch = [i for i in inputs if is_batch_input(i)]
    files = [i for i in inputs if not is_batch_input(i)]
    if batch and a.layers:
        raise UserError("--layers works with single images, not with folders or archives")
    if batch and a.hints and Path(a.hints).suffix.lower() != ".json":
        raise UserError("with folders or archives --hints must be a JSON file (per-page hints: <page>.hints.json)")
    if a.confidence is not None and a.confidence < 0:
        raise UserError(f"--confidence must be 0 or more, got {a.confidence}")
    written = colorize_files(model, files, Path(a.out), hints_path=a.hints, device=a.device,
                             soft_hints=a.soft_hints, layers=a.layers, gap=a.gap,
                             confidence=a.confidence, keep_shading=a.keep_shading, detail=a.detail,
                             propagate=a.propagate) if files else []
    if batch:
        written += colorize_batch(model, batch, Path(a.out), hints=load_hints(a.hints) if a.hints else None,
                                  device=a.device, soft_hints=a.soft_hints, gap=a.gap, confidence=a.confidence,
                                  keep_shading=a.keep_shading, detail=a.detail, propagate=a.propagate)
    for p in written:
        print(p)
        if a.layers:
            print(p.with_suffix(".ora"))  # the flat/shading/lines PNGs lie beside it, named after it


def cmd_eval(a: argparse.Namespace) -> None:
    from .evaluate.run import evaluate, parse_protocols, write_inputs

    if len(a.targets) > 2:
        raise UserError("eval takes [MODEL] DATASET")
    model, dataset = (a.targets if len(a.targets) == 2 else (None, a.targets[0]))
    compare = None
    if a.compare:
        if len(a.compare) == 2:
            if model is not None:
                raise UserError("give either MODEL DATASET --compare B, or DATASET --compare A B")
            model, compare = a.compare
        elif len(a.compare) == 1:
            compare = a.compare[0]
        else:
            raise UserError("--compare takes one model (compared with MODEL) or two")
        if model is None:
            raise UserError("--compare B needs a MODEL to compare with")
    if a.write_inputs:
        n = write_inputs(Path(dataset), Path(a.write_inputs), split=a.split, limit=a.limit, gaps=a.gaps,
                         input_kind=a.input)
        print(f"wrote {n} line-art inputs to {a.write_inputs}; score another tool's outputs with --predictions")
        return
    if not a.out:
        raise UserError("-o/--out REPORT_DIR is required")
    for b in a.baseline or ():
        if b not in ("white", "region-fill", "mean-color") and "=" not in b:
            raise UserError(f"--baseline {b}: expected white, region-fill, mean-color or LABEL=MODEL")
    parse_protocols(a.hints, a.hint_curve)  # a malformed --hints fails before any data is read
    report = evaluate(model, Path(dataset), Path(a.out), split=a.split, limit=a.limit, device=a.device,
                      baselines=tuple(a.baseline or ()), hint_curve=a.hint_curve, gaps=a.gaps,
                      predictions=Path(a.predictions) if a.predictions else None, compare=compare,
                      protocols=a.hints, input_kind=a.input)
    print(f"report: {report}")


def cmd_serve(a: argparse.Namespace) -> None:
    from .serve.app import run_server

    run_server(a.models, host=a.host, port=a.port, max_bytes=a.max_bytes, max_pixels=a.max_pixels,
               queue_size=a.queue_size, timeout_s=a.timeout, cors_origins=a.cors_origin or [], device=a.device)


def cmd_export(a: argparse.Namespace) -> None:
    from .checkpoint import export_generator

    src = Path(a.model)
    if a.best:
        src = src / "best.safetensors"
    if Path(a.out).suffix.lower() == ".onnx":
        from .onnx_model import export_onnx

        out = export_onnx(a.model if not a.best else src, Path(a.out))
    else:
        out = export_generator(src, Path(a.out), half=not a.float32)
    print(f"exported {src} -> {out} ({out.stat().st_size / 1e6:.1f} MB)")


def cmd_debug_overfit(a: argparse.Namespace) -> None:
    from .debug.overfit import overfit

    res = overfit(a.dataset, a.run_dir, images=a.images, steps=a.steps, target=a.target, config=a.config,
                  overrides=a.set)
    print(f"L1 {res.start:.4f} -> {res.end:.4f} (best {res.best:.4f}) in {res.steps} steps, {res.seconds} s; "
          f"report: {Path(a.run_dir) / 'overfit.html'}")
    if not res.ok:
        raise UserError(f"overfit failed: {res.diagnosis}")
    print(f"ok: {res.diagnosis}")


def cmd_debug_check(a: argparse.Namespace) -> None:
    from .debug.check import run_checks

    checks = run_checks(a.dataset, a.out, model=a.model, config=a.config, overrides=a.set)
    width = max(len(c.name) for c in checks)
    for c in checks:
        print(f"{c.verdict:5} {c.name:{width}}  {c.detail}")
    print(f"report: {Path(a.out) / 'check.html'}")
    failed = [c.name for c in checks if c.verdict == "FAIL"]
    if failed:
        raise UserError(f"check failed: {', '.join(failed)}")


def cmd_debug_lr_find(a: argparse.Namespace) -> None:
    from .debug.lrfind import lr_find

    res = lr_find(a.dataset, a.out, start=a.start, end=a.end, steps=a.steps, config=a.config, overrides=a.set)
    print(f"suggested: --set optim.lr_g={res.lr_g:.2g} --set optim.lr_d={res.lr_d:.2g}  "
          f"(report: {Path(a.out) / 'lr_find.html'})")


def cmd_tune(a: argparse.Namespace) -> None:
    from .tune import run_tune

    summary = run_tune(a.dataset, a.study_dir, trials=a.trials, minutes=a.minutes_per_trial, storage=a.storage,
                       space_path=a.space, resume=a.resume, config=a.config, overrides=a.set, coarse=a.coarse,
                       max_steps=a.max_steps)
    best = (f"best: trial {summary['best_trial']} at {summary['best_value']:.3f} dB -> "
            f"{Path(a.study_dir) / 'best.yaml'}" if "best_trial" in summary else "no trial completed")
    print(f"{summary['complete']} complete, {summary['pruned']} pruned, {summary['failed']} failed; {best}; "
          f"report: {Path(a.study_dir) / 'report.html'}")


def cmd_ensemble(a: argparse.Namespace) -> None:
    from .ensemble import average_weights

    out, files = average_weights(a.models, a.out, last=a.last)
    print(f"averaged {len(files)} generators -> {out}")


def cmd_character(a: argparse.Namespace) -> None:
    from .character.model import make_character

    out = make_character(a.references, a.out, lines=a.lines, base=a.base, name=a.name, minutes=a.minutes)
    print(f"character {a.name or out.stem!r} from {len(a.references)} reference(s): {out}"
          f" ({out.stat().st_size / 1e6:.1f} MB); use it as MODEL, e.g. tintline colorize {out} LINES.png -o OUT")


def cmd_viz(a: argparse.Namespace) -> None:
    import os

    run = Path(a.run_dir)
    if not run.is_dir() or not any(run.glob("**/events.out.tfevents.*")):
        raise UserError(f"{run}: no TensorBoard logs (is it a run directory written by 'tintline train'?)")
    cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", str(run), "--host", a.host, "--port", str(a.port)]
    print(f"TensorBoard on http://{a.host}:{a.port}/ (Ctrl-C stops it)", flush=True)
    os.execv(sys.executable, cmd)  # become TensorBoard: signals reach it directly, no orphan is left behind


def cmd_demo(a: argparse.Namespace) -> None:
    from .demo import run_demo

    report = run_demo(Path(a.workdir), minutes=a.minutes)
    print(f"demo report: {report}")


# ----------------------------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tintline", description="Colorize anime and manga line art.")
    p.add_argument("--version", action="version", version=f"tintline {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # data
    d = sub.add_parser("data", help="build datasets: import, crawl, build, list, tags, report, export")
    dsub = d.add_subparsers(dest="data_command", required=True, metavar="STEP")

    s = dsub.add_parser("import", help="copy a folder or a built-in corpus into a dataset")
    s.add_argument("dataset", help="dataset directory (created if missing)")
    s.add_argument("source", help="a folder (sub-folder names become tags) or a built-in: openclipart, renpy-demo")
    s.add_argument("--tag", action="append", help="extra tag for every imported file (repeatable)")
    s.set_defaults(func=cmd_data_import)

    s = dsub.add_parser("build", help="validate, filter, deduplicate, split 70/20/10, extract line art")
    s.add_argument("dataset")
    s.add_argument("--size", type=int, help="side of the training images in pixels (default 256)")
    s.add_argument("--workers", type=int, help="processes (default: one per CPU core)")
    s.add_argument("--balance", type=int, metavar="N",
                   help="keep at most N accepted images per tag (saved in dataset.yaml; 0 turns it off)")
    s.set_defaults(func=cmd_data_build)

    s = dsub.add_parser("crawl", help="download images by tags from a booru site (Danbooru, Gelbooru, Safebooru)")
    s.add_argument("dataset")
    s.add_argument("--site", required=True, help="safebooru | danbooru | gelbooru | a base URL")
    s.add_argument("--api", choices=["danbooru", "gelbooru02"], help="API kind (needed for a custom URL)")
    s.add_argument("--tags", required=True, help='tags to search, e.g. "1girl solo"')
    s.add_argument("--exclude-tags", default="", help="tags to leave out")
    s.add_argument("--rating", help="safe | general | sensitive | questionable | explicit")
    s.add_argument("--limit", type=int, default=100, help="stop after this many accepted images (default 100)")
    s.set_defaults(func=cmd_data_crawl)

    s = dsub.add_parser("fetch", help="download a list of image URLs (one per line) with the crawler's politeness;"
                                      " resumable")
    s.add_argument("dataset")
    s.add_argument("urls", metavar="URLS.txt", help="one http(s) URL per line; blank lines and # comments ignored")
    s.add_argument("--tag", action="append", default=[], help="tag for every fetched image (repeatable)")
    s.set_defaults(func=cmd_data_fetch)

    s = dsub.add_parser("list", help="list a dataset's entries with status, reason, split and tags")
    s.add_argument("dataset")
    s.add_argument("--status", choices=["pending", "accepted", "rejected"])
    s.add_argument("--reason")
    s.add_argument("--split", choices=["train", "val", "test"])
    s.add_argument("--tag")
    s.add_argument("--json", action="store_true", help="one JSON object per line")
    s.set_defaults(func=cmd_data_list)

    s = dsub.add_parser("import-pairs", help="import real line-art / color pairs, matched by file name")
    s.add_argument("dataset", help="dataset directory (created if missing)")
    s.add_argument("lines_dir", help="folder of line art")
    s.add_argument("colors_dir", help="folder of the matching color images (sub-folder names become tags)")
    s.add_argument("--tag", action="append", help="extra tag for every imported pair (repeatable)")
    s.set_defaults(func=cmd_data_import_pairs)

    s = dsub.add_parser("tags", help="count images per tag: before cleaning, accepted, and per split")
    s.add_argument("dataset")
    s.add_argument("--json", action="store_true", help="one JSON object per line")
    s.set_defaults(func=cmd_data_tags)

    s = dsub.add_parser("report", help="write an HTML page showing what the build kept, dropped and why")
    s.add_argument("dataset")
    s.add_argument("-o", "--out", help="HTML file to write (default DATASET/report/index.html)")
    s.set_defaults(func=cmd_data_report)

    s = dsub.add_parser("classify", help="train the optional learned filter and store a score per image")
    s.add_argument("dataset")
    s.add_argument("--labels", help="folder with one sub-folder per label (default: learn from the manifest's"
                                    " own accept/reject decisions)")
    s.add_argument("--positive", default="keep", help="the label (sub-folder) to keep (default: keep)")
    s.set_defaults(func=cmd_data_classify)

    s = dsub.add_parser("export", help="write accepted pairs as WebDataset tar shards for streaming")
    s.add_argument("dataset")
    s.add_argument("out_dir")
    s.add_argument("--split", action="append", choices=["train", "val", "test"],
                   help="export only this split (repeatable; default all three)")
    s.add_argument("--shard-size", type=int, default=1000, help="pairs per shard (default 1000)")
    s.set_defaults(func=cmd_data_export)

    # train
    s = sub.add_parser("train", help="train a colorizer on a built dataset")
    s.add_argument("dataset")
    s.add_argument("run_dir")
    s.add_argument("--config", help="YAML recipe (see configs/)")
    s.add_argument("--minutes", type=float, help="wall-clock budget (overrides train.minutes)")
    s.add_argument("--max-steps", type=int, help="stop after this many steps (overrides train.max_steps)")
    s.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    s.add_argument("--init-from", metavar="MODEL",
                   help="transfer learning: start from this model file or run (learning rates x finetune_lr_scale)")
    s.add_argument("--freeze-encoder", type=int, metavar="N",
                   help="with --init-from: freeze the first N encoder levels")
    s.add_argument("--devices", type=int, help="processes (CPU) or GPUs; above 1 trains with DDP (train.devices)")
    s.add_argument("--precision", choices=["32-true", "16-mixed", "bf16-mixed"], help="train.precision")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a field, e.g. train.batch_size=4")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("colorize", help="colorize line art of any size")
    s.add_argument("model", metavar="[MODEL]",
                   help="a checkpoint (.safetensors), a run directory, 'default' (the shipped model; also used when"
                        " MODEL is left out), or a baseline: white, region-fill")
    s.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="line art images (PNG, JPEG, WebP), folders of pages (-> OUT/<folder>/...png) or comic"
                        " archives .cbz/.zip (-> OUT/<name>.cbz); a killed batch resumes where it stopped")
    s.add_argument("-o", "--out", required=True, help="output directory")
    s.add_argument("--hints", help="hints JSON (points and strokes, in input-image pixels), or a hint image: a"
                                   " transparent PNG of the input's size with colored marks. In folders and"
                                   " archives a page's own <page>.hints.json beside it wins")
    s.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    s.add_argument("--soft-hints", action="store_true",
                   help="the network's own output: hints are suggestions and colors may cross lines (default:"
                        " region-true, one flat color per closed region, hinted regions exactly their hint's color)")
    s.add_argument("--gap", type=int, default=None, metavar="PX",
                   help="close breaks in strokes up to about PX pixels so they do not merge two regions (default:"
                        " the measured line width; 0: no gap closing)")
    s.add_argument("--confidence", type=float, default=None, metavar="C",
                   help="an unhinted region takes the model's most likely color when it is at least this likely to"
                        " be right (default 0: always); above 1: never, the network's mean color instead (hedged"
                        " pale colors, lower ΔE00, fewer regions exactly right)")
    s.add_argument("--keep-shading", action=argparse.BooleanOptionalAction, default=None,
                   help="a gray or screentoned manga page (or a color image) keeps its own lightness and the model"
                        " chooses only the colors over it (default: on for such pages; line art has no shading)")
    s.add_argument("--detail", choices=["auto", "fixed", "native"], default=None,
                   help="fixed: the network sees the input at its training size (256 px), the regions and colors"
                        " stay at full size; native: scaled so its lines are as thick as in training and run on"
                        " overlapping 512-px tiles (more regions right on large pages, slower); auto (default):"
                        " native above 1024 px, fixed below")
    s.add_argument("--propagate", action=argparse.BooleanOptionalAction, default=None,
                   help="an unhinted region may take the exact color of a hint given elsewhere on the drawing where"
                        " the model finds that likelier right than its own choice (default: on); --no-propagate:"
                        " hints color only their own regions")
    s.add_argument("--layers", action="store_true",
                   help="also write <stem>.ora (OpenRaster for Krita, GIMP, MyPaint: lines and shading multiply"
                        " over flat colors) and <stem>_flat.png, <stem>_shading.png, <stem>_lines.png")
    s.set_defaults(func=cmd_colorize)

    s = sub.add_parser("eval", help="score models and baselines on a dataset split; HTML report + metrics.json")
    s.add_argument("targets", nargs="+", metavar="[MODEL] DATASET",
                   help="a model (checkpoint, run directory or baseline name) and a dataset; the model may be left"
                        " out with --predictions or --compare A B")
    s.add_argument("--split", default="test", choices=["train", "val", "test"])
    s.add_argument("-o", "--out", help="report directory")
    s.add_argument("--limit", type=int, default=0, help="evaluate at most this many images (0: all)")
    s.add_argument("--baseline", action="append", metavar="NAME",
                   help="also score a baseline (repeatable): white, region-fill, mean-color, or a trained one as "
                        "LABEL=MODEL, e.g. pix2pix=runs/pix2pix (configs/pix2pix.yaml trained on the same data)")
    s.add_argument("--hints", action="append", metavar="PROTOCOL",
                   help="hint protocol to score under (repeatable): simulated (the training simulator's marks at 0"
                        " and 8 hints), none, per-region (a dot of the true color in every closed region),"
                        " largest:K (dots in the K largest regions); default: simulated, per-region, largest:4,"
                        " none")
    s.add_argument("--hint-curve", action="store_true",
                   help="simulated hints at 0, 1, 2, 4, 8, 16 and 32 marks (slower)")
    s.add_argument("--gaps", action="store_true", help="erase short random segments of the lines first")
    s.add_argument("--input", choices=("lines", "manga"), default="lines",
                   help="what the colorizers get: the pairs' line art (default), or each test image as a gray or"
                        " screentoned manga page, read as a user's page is (detected, descreened, shading kept)")
    s.add_argument("--predictions", metavar="PRED_DIR", help="score another tool's images, named <key>.png")
    s.add_argument("--write-inputs", metavar="DIR", help="write the split's line art as <key>.png and stop")
    s.add_argument("--compare", nargs="+", metavar="MODEL",
                   help="compare MODEL with this one (or --compare A B): bootstrap CIs, images that differ most")
    s.add_argument("--device", default="cpu")
    s.set_defaults(func=cmd_eval)

    s = sub.add_parser("serve", help="web page and HTTP API for colorizing (binds to 127.0.0.1 by default)")
    s.add_argument("models", nargs="*", metavar="MODEL",
                   help="checkpoints, run directories or baselines to offer (default: the shipped model)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--max-bytes", type=int, default=20 * 1024 * 1024, help="largest accepted upload (bytes)")
    s.add_argument("--max-pixels", type=int, default=4096 * 4096, help="largest accepted image (pixels)")
    s.add_argument("--queue-size", type=int, default=8, help="requests waiting beyond this get 503 + Retry-After")
    s.add_argument("--timeout", type=float, default=30.0, help="per-request time limit (seconds)")
    s.add_argument("--cors-origin", action="append", help="allow this origin (repeatable; default: no CORS)")
    s.add_argument("--device", default="cpu")
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("export", help="write a run's generator as one self-describing safetensors (or ONNX) file")
    s.add_argument("model", help="a run directory, checkpoint folder, generator file or 'default'")
    s.add_argument("out", help="output .safetensors file, or .onnx for onnxruntime (opset 18, dynamic height and"
                              " width; usable as MODEL anywhere)")
    s.add_argument("--best", action="store_true", help="export the run's best generator by validation L1")
    s.add_argument("--float32", action="store_true", help="keep float32 (default: float16, half the size)")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("character", help="make a character model from 1-8 colored references of one character")
    s.add_argument("references", nargs="+", metavar="REF", help="colored drawings of the character (PNG, JPEG, WebP)")
    s.add_argument("-o", "--out", required=True, help="the character file to write (NAME.safetensors)")
    s.add_argument("--lines", nargs="+", metavar="REF_LINES",
                   help="line art of the references, one each in the same order and size (default: extracted)")
    s.add_argument("--from", dest="base", default="default", metavar="MODEL",
                   help="model whose network the character uses (default: the shipped model)")
    s.add_argument("--minutes", type=float, default=0.0,
                   help="minutes to fine-tune the network on the references, with a progress bar (about 5 is enough; "
                        "default 0: reference matching with the base network as it is)")
    s.add_argument("--name", help="the character's name (default: the file's stem)")
    s.set_defaults(func=cmd_character)

    s = sub.add_parser("debug", help="the method's debugging tools: overfit a tiny set, find the learning rate")
    dsub2 = s.add_subparsers(dest="debug_cmd", required=True)
    s = dsub2.add_parser("overfit", help="train on a few images (no augmentation, no hints) until the loss is near 0;"
                                         " exit non-zero with a diagnosis when it does not fall")
    s.add_argument("dataset")
    s.add_argument("run_dir", help="folder for overfit.json, overfit.html and the sample picture")
    s.add_argument("--images", type=int, default=8)
    s.add_argument("--steps", type=int, default=500, help="at most this many steps (stops at the target)")
    s.add_argument("--target", type=float, default=0.05, help="L1 on paper pixels (RGB in [-1, 1]) that counts as"
                                                          " memorized")
    s.add_argument("--config", help="YAML recipe (default: the built-in default recipe)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe field")
    s.set_defaults(func=cmd_debug_overfit)
    s = dsub2.add_parser("check", help="data and model checklists (pairs, line art, hints, augmentation, gradients,"
                                       " initialisation, discriminator, model) with a verdict each")
    s.add_argument("dataset")
    s.add_argument("model", nargs="?", metavar="RUN_DIR|MODEL", help="also check this model's outputs")
    s.add_argument("-o", "--out", default="check", help="folder for check.html and augmentations.png")
    s.add_argument("--config", help="YAML recipe (default: the built-in default recipe)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe field")
    s.set_defaults(func=cmd_debug_check)
    s = dsub2.add_parser("lr-find", help="learning-rate range test: HTML plot and a suggested optim.lr_g / lr_d")
    s.add_argument("dataset")
    s.add_argument("-o", "--out", required=True, help="folder for lr_find.json and lr_find.html")
    s.add_argument("--start", type=float, default=1e-6)
    s.add_argument("--end", type=float, default=1.0)
    s.add_argument("--steps", type=int, default=200)
    s.add_argument("--config", help="YAML recipe (default: the built-in default recipe)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe field")
    s.set_defaults(func=cmd_debug_lr_find)

    s = sub.add_parser("tune", help="random, coarse-to-fine hyperparameter search (Optuna) with pruning; resumable")
    s.add_argument("dataset")
    s.add_argument("study_dir", help="trials, report.html, best.yaml and (by default) the study database")
    s.add_argument("--trials", type=int, required=True, help="finished trials to reach (complete or pruned)")
    s.add_argument("--minutes-per-trial", type=float, required=True, help="training time of each trial")
    s.add_argument("--storage", help="database URL shared by several workers (default sqlite:///STUDY_DIR/study.db)")
    s.add_argument("--space", help="search space YAML: field: {low, high[, log, int]} or {choices: [...]}")
    s.add_argument("--resume", action="store_true", help="continue the study in STUDY_DIR / --storage")
    s.add_argument("--coarse", type=int, help="trials of the coarse random stage (default half of --trials)")
    s.add_argument("--max-steps", type=int, default=0, help="also stop each trial after this many steps")
    s.add_argument("--config", help="base YAML recipe (default: the built-in default recipe)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a base recipe field")
    s.set_defaults(func=cmd_tune)

    s = sub.add_parser("ensemble", help="average the weights of a run's last checkpoints (or of compatible models)")
    s.add_argument("models", nargs="+", metavar="MODEL_OR_RUN")
    s.add_argument("-o", "--out", required=True, help="the averaged model (.safetensors)")
    s.add_argument("--last", type=int, default=3, help="checkpoints per run (default 3, what a run keeps)")
    s.set_defaults(func=cmd_ensemble)

    s = sub.add_parser("viz", help="open a run (or a folder of runs) in TensorBoard on 127.0.0.1")
    s.add_argument("run_dir")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=6006)
    s.set_defaults(func=cmd_viz)

    s = sub.add_parser("demo", help="the whole pipeline on the built-in corpus, ending in an HTML report")
    s.add_argument("--workdir", default="tintline-demo", help="where to put the dataset, run and report")
    s.add_argument("--minutes", type=float, default=8.0, help="training budget (default 8)")
    s.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("interrupted; work done so far is saved, run the same command again to continue", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `tintline data list DS | head`: the reader left; not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (UserError, FileNotFoundError) as e:
        msg = str(e).splitlines()[0] if str(e) else e.__class__.__name__
        print(f"error: {msg}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
