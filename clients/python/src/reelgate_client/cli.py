"""The ``reelgate-client`` command: generate, models, model, jobs, job, usage, cancel, balance.
Each is a thin shell over ``reelgate_client.Client``. The server's ``reelgate`` command
offers the same commands (``register_client_commands``).

Results go to stdout (tables, or the gateway's JSON with ``--json``); progress,
prompts and errors go to stderr, so ``--json`` output can be piped. An error
prints the gateway's code and message and exits 1; Ctrl-C exits 130.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

try:
    import typer
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.prompt import Prompt
    from rich.table import Table
    from rich.text import Text
except ImportError as exc:  # the SDK alone was installed
    raise SystemExit(
        f"reelgate-client's command line needs its extra ({exc.name} is missing): "
        "pip install 'reelgate-client[cli]'"
    ) from exc

from reelgate_client import (
    APIConnectionError,
    Client,
    ConflictError,
    InsufficientCreditsError,
    Model,
    ReelgateAPIError,
    ReelgateClientError,
    Storyboard,
    ValidationError,
    Video,
)
from reelgate_client._core import VARIANTS

__all__ = ["app", "register_client_commands"]

out = Console(highlight=False, soft_wrap=False)
err = Console(stderr=True, highlight=False)

Url = Annotated[
    str | None,
    typer.Option(
        "--url", envvar="REELGATE_URL", help="Gateway URL (default: http://127.0.0.1:8000)."
    ),
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key", envvar="REELGATE_API_KEY", help="API key (rg_...).", show_default=False
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the gateway's JSON (for scripts).")]


Duration = Annotated[
    int | None, typer.Option("--duration", "-d", help="Seconds (of each shot, for a storyboard).")
]
Aspect = Annotated[str | None, typer.Option("--aspect", "-a", help="e.g. 16:9, 9:16.")]
Resolution = Annotated[str | None, typer.Option("--resolution", "-r", help="e.g. 720p.")]
Fallback = Annotated[
    list[str] | None,
    typer.Option("--fallback", "-f", help="A model to fall back to on quota (repeatable)."),
]
OutPath = Annotated[
    Path | None, typer.Option("--out", "-o", help="Where to save (default: <job id>.mp4).")
]
WaitSeconds = Annotated[
    float | None, typer.Option("--timeout", help="Stop waiting after this many seconds.")
]
EditModel = Annotated[
    str | None, typer.Option("--model", "-m", help="Default: the model that made the video.")
]


@contextlib.contextmanager
def _client(url: str | None, api_key: str | None) -> Iterator[Client]:
    """A client whose errors become one stderr line and exit code 1."""
    try:
        with Client(base_url=url, api_key=api_key) as client:
            yield client
    except APIConnectionError as exc:
        err.print(f"[red]error[/]: cannot reach reelgate ({exc}). Set REELGATE_URL or --url.")
        raise typer.Exit(1) from None
    except ReelgateAPIError as exc:
        _print_api_error(exc)
        raise typer.Exit(1) from None
    except ReelgateClientError as exc:
        err.print(f"[red]error[/]: {exc}")
        raise typer.Exit(1) from None


def _print_api_error(exc: ReelgateAPIError) -> None:
    status = f" (HTTP {exc.status})" if exc.status else ""
    err.print(f"[red]error[/] [bold]{exc.code}[/]{status}: {exc.message}", markup=True)
    if isinstance(exc, ValidationError) and exc.param:
        allowed = f"; allowed: {', '.join(map(str, exc.allowed))}" if exc.allowed else ""
        err.print(f"  parameter: {exc.param}{allowed}")
    if isinstance(exc, InsufficientCreditsError) and exc.shortfall:
        err.print(f"  needed {exc.hold_needed}, available {exc.available}, short {exc.shortfall}")


def _print_json(value: object) -> None:
    out.out(json.dumps(value, indent=2, ensure_ascii=False), highlight=False)


def _prog() -> str:
    """The command being run (``reelgate`` or ``reelgate-client``), for hints."""
    name = Path(sys.argv[0]).name
    return name if name in ("reelgate", "reelgate-client") else "reelgate"


def _when(value: datetime | None) -> str:
    return value.astimezone().strftime("%m-%d %H:%M") if value else ""


def _table(title: str | None = None, *, show_header: bool = True) -> Table:
    return Table(
        title=title,
        box=box.SIMPLE_HEAD,
        show_header=show_header,
        title_justify="left",
        pad_edge=False,
    )


@dataclass(frozen=True)
class _Col:
    header: str
    drop: int = 0
    """0: always shown; otherwise columns with the highest number go first when
    the terminal is too narrow (rather than folding every cell into slivers)."""
    wraps: bool = False
    """Free text that may wrap (it then needs only a little width)."""


def _fitted(title: str, cols: Sequence[_Col], rows: Sequence[Sequence[str]]) -> Table:
    def width(i: int) -> int:
        cells = [Text.from_markup(r[i]).cell_len for r in rows]
        natural = max([len(cols[i].header), *cells])
        return min(natural, 16) if cols[i].wraps else natural

    keep = list(range(len(cols)))
    for i in sorted(keep, key=lambda i: -cols[i].drop):
        if sum(width(j) + 3 for j in keep) - 1 <= out.width or cols[i].drop == 0:
            break
        keep.remove(i)
    table = _table(title)
    for i in keep:
        table.add_column(cols[i].header, no_wrap=not cols[i].wraps, overflow="fold")
    for r in rows:
        table.add_row(*(r[i] for i in keep))
    return table


def _cost(video: Video) -> str:
    if not video.cost:
        return "-"
    money = f" ({video.cost.money})" if video.cost.money else ""
    return f"{video.cost.credits} credits{money}"


def _model_text(video: Video) -> str:
    if video.delivered_by and video.delivered_by != video.model:
        return f"{video.delivered_by} (fallback from {video.model})"
    return video.model


def _status_text(video: Video) -> str:
    current = video.attempts[-1].model if video.attempts else video.model
    text = video.status.replace("_", " ")
    if current != video.model and not video.is_final:
        text += f" on {current} (fallback)"
    return text


# -- generate ------------------------------------------------------------------


def _progress_bar() -> Progress:
    """Status, bar, percent and elapsed time, on stderr."""
    return Progress(
        TextColumn("[bold]{task.fields[status]:<26}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=err,
    )


def _wait_with_progress(client: Client, video: Video, timeout: float | None) -> Video:
    """Wait for the job under a live progress bar (status, %, elapsed)."""
    progress = _progress_bar()
    task = progress.add_task("generate", total=100, status=_status_text(video))

    def update(v: Video) -> None:
        progress.update(task, completed=v.progress, status=_status_text(v))

    with progress:
        return client.wait(video.id, on_progress=update, timeout=timeout)


def _interrupted(client: Client, video_id: str) -> None:
    err.print(f"\nInterrupted while waiting for video job [bold]{video_id}[/].")
    try:
        choice = Prompt.ask(
            "Cancel the job, or leave it running?",
            choices=["cancel", "leave"],
            default="leave",
            console=err,
        )
    except (KeyboardInterrupt, EOFError):
        choice = "leave"
    if choice == "cancel":
        try:
            _print_canceled(client.cancel(video_id))
        except ConflictError as exc:  # it finished while we asked
            out.print(f"{video_id} was not canceled: {exc.message}")
    else:
        out.print(f"left {video_id} running; check on it with: {_prog()} job {video_id}")


def generate(
    prompt: Annotated[str, typer.Argument(help="What the video shows (describe the motion).")],
    model: Annotated[
        str, typer.Option("--model", "-m", help="A model id (see the `models` command).")
    ],
    duration: Duration = None,
    aspect: Aspect = None,
    resolution: Resolution = None,
    image: Annotated[
        Path | None,
        typer.Option("--image", exists=True, dir_okay=False, help="A still to animate."),
    ] = None,
    image_url: Annotated[str | None, typer.Option("--image-url", help="A still, by URL.")] = None,
    fallback: Fallback = None,
    negative_prompt: Annotated[str | None, typer.Option("--negative-prompt")] = None,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    audio: Annotated[
        bool | None,
        typer.Option(
            "--audio/--no-audio",
            help="With or without a soundtrack (default: the model's).",
            show_default=False,
        ),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            help="KEY=VALUE: a synced model's own input (repeatable; VALUE as JSON when it "
            "parses, else a string). See `model <id>`.",
        ),
    ] = None,
    out_path: OutPath = None,
    timeout: WaitSeconds = None,
    url: Url = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Generate a video, show its progress, and save it.

    Ctrl-C while waiting asks whether to cancel the job or leave it running.
    """
    provider_params = _provider_params(param)
    with _client(url, api_key) as client:
        video = client.submit(
            model,
            prompt,
            fallback=fallback or None,
            duration_seconds=duration,
            resolution=resolution,
            aspect_ratio=aspect,
            image=image,
            image_url=image_url,
            negative_prompt=negative_prompt,
            seed=seed,
            audio=audio,
            provider_params=provider_params,
        )
        _follow_and_save(client, video, out_path, timeout, as_json)


def _provider_params(pairs: Sequence[str] | None) -> dict[str, Any] | None:
    """``--param KEY=VALUE`` options as a dict (None when there are none): VALUE as JSON
    when it parses (``5``, ``true``, ``["a"]``), else the string as given."""
    if not pairs:
        return None
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--param")
        try:
            params[key] = json.loads(text)
        except ValueError:
            params[key] = text
    return params


def _follow_and_save(
    client: Client, video: Video, out_path: Path | None, timeout: float | None, as_json: bool
) -> None:
    """Wait for a queued job under the progress bar, then save its video."""
    try:
        err.print(
            f"video job [bold]{video.id}[/] queued on {video.model} "
            f"({video.seconds} s, {video.size})"
        )
        final = _wait_with_progress(client, video, timeout)
    except KeyboardInterrupt:
        _interrupted(client, video.id)
        raise typer.Exit(130) from None
    try:
        path = client.download(final, out_path or Path(f"{final.id}.mp4"))
    except KeyboardInterrupt:
        err.print(f"\nDownload interrupted; the video is ready: {_prog()} job {final.id}")
        raise typer.Exit(130) from None
    if as_json:
        _print_json({**final.raw, "path": str(path)})
        return
    seconds = final.units_consumed if final.units_consumed is not None else final.seconds
    out.print(f"saved {path}")
    out.print(f"  {seconds} s, {final.size}, {_cost(final)}, by {_model_text(final)}")
    out.print(f"  job {final.id}")


def extend(
    video_id: Annotated[str, typer.Argument(help="A completed video job to continue.")],
    prompt: Annotated[str, typer.Argument(help="What happens next.")],
    duration: Annotated[
        int | None, typer.Option("--duration", "-d", help="Seconds to add.")
    ] = None,
    model: EditModel = None,
    fallback: Fallback = None,
    out_path: OutPath = None,
    timeout: WaitSeconds = None,
    url: Url = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Continue a video: a new job whose video is the whole, longer video (billed for
    the seconds added), shown with its progress and saved."""
    with _client(url, api_key) as client:
        video = client.extend(
            video_id, prompt, duration_seconds=duration, model=model, fallback=fallback or None
        )
        _follow_and_save(client, video, out_path, timeout, as_json)


def remix(
    video_id: Annotated[str, typer.Argument(help="A completed video job to re-make.")],
    prompt: Annotated[str, typer.Argument(help="The new prompt.")],
    model: EditModel = None,
    out_path: OutPath = None,
    timeout: WaitSeconds = None,
    url: Url = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Re-make a video to a new prompt (on a model whose provider remixes), show its
    progress and save it."""
    with _client(url, api_key) as client:
        video = client.remix(video_id, prompt, model=model)
        _follow_and_save(client, video, out_path, timeout, as_json)


def _board_status(board: Storyboard) -> str:
    done = sum(1 for s in board.shots if s.status == "completed")
    if board.stage == "joining":
        return "joining the shots"
    if board.status == "in_progress":
        return f"shots: {done}/{len(board.shots)} done"
    return board.status


def _follow_board(
    client: Client, board: Storyboard, out_path: Path | None, timeout: float | None, as_json: bool
) -> None:
    """Wait for a storyboard under the progress bar; save its video, or explain."""
    err.print(f"storyboard [bold]{board.id}[/] queued: {len(board.shots)} shots")
    progress = _progress_bar()
    task = progress.add_task("storyboard", total=100, status=_board_status(board))

    def update(b: Storyboard) -> None:
        progress.update(task, completed=b.progress, status=_board_status(b))

    with progress:
        final = client.wait_storyboard(board.id, on_progress=update, timeout=timeout)
    if final.status != "completed":
        message = (final.error or {}).get("message") or final.status
        err.print(f"[red]storyboard {final.id} {final.status}[/]: {message}")
        if as_json:
            _print_json(dict(final.raw))
        raise typer.Exit(1)
    path = client.download_storyboard(final, out_path or Path(f"{final.id}.mp4"))
    if as_json:
        _print_json({**final.raw, "path": str(path)})
        return
    seconds = (final.result or {}).get("duration_seconds")
    cost = final.cost.credits if final.cost else "0.000"
    out.print(f"saved {path}")
    out.print(
        f"  {len(final.shots)} shots, {seconds} s, {cost} credits for {final.units_consumed} s"
    )
    out.print(f"  storyboard {final.id}")


def storyboard(
    prompts: Annotated[
        list[str] | None, typer.Argument(help="One prompt per shot, in order.")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="The model of every shot.")
    ] = None,
    duration: Duration = None,
    aspect: Aspect = None,
    resolution: Resolution = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", exists=True, dir_okay=False, help="A JSON body of POST /v1/storyboards."
        ),
    ] = None,
    continue_from_previous: Annotated[
        bool, typer.Option("--continue", help="Start each shot from the last frame before it.")
    ] = False,
    crossfade: Annotated[
        float, typer.Option("--crossfade", help="Seconds to blend at each join (0: cuts).")
    ] = 0.0,
    out_path: OutPath = None,
    timeout: WaitSeconds = None,
    url: Url = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Make several shots and join them into one video: one prompt per shot (with
    --model), or --file with the whole request. Shows progress and saves the video."""
    if file is not None:
        body = json.loads(file.read_text())
        shots = body.get("shots") or []
        continue_from_previous = bool(body.get("continue_from_previous", continue_from_previous))
        crossfade = float(body.get("crossfade_seconds", crossfade))
    elif prompts and model:
        shots = [
            {
                "model": model,
                "prompt": p,
                "duration_seconds": duration,
                "resolution": resolution,
                "aspect_ratio": aspect,
            }
            for p in prompts
        ]
    else:
        err.print("Give one prompt per shot and --model, or --file with the request.")
        raise typer.Exit(2)
    with _client(url, api_key) as client:
        board = client.create_storyboard(
            shots, continue_from_previous=continue_from_previous, crossfade_seconds=crossfade
        )
        _follow_board(client, board, out_path, timeout, as_json)


def storyboard_retry(
    storyboard_id: Annotated[str, typer.Argument(help="A failed storyboard.")],
    shot: Annotated[int, typer.Argument(help="The failed shot's number, from 1.")],
    prompt: Annotated[str | None, typer.Option("--prompt", help="A new prompt.")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Another model.")] = None,
    out_path: OutPath = None,
    timeout: WaitSeconds = None,
    url: Url = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Make a failed shot again (the others are kept), then finish and save the video."""
    changes = {k: v for k, v in (("prompt", prompt), ("model", model)) if v is not None}
    with _client(url, api_key) as client:
        board = client.retry_shot(storyboard_id, shot, **changes)
        _follow_board(client, board, out_path, timeout, as_json)


# -- reading -----------------------------------------------------------------------


def _price_text(m: Model) -> str:
    if not m.priced:
        return "unpriced"
    money = f" ({m.price.money_per_second})" if m.price.money_per_second else ""
    return m.price.credits_per_second + money


def _source_text(m: Model) -> str:
    """``builtin``, or ``synced`` with what keeps a synced model from use."""
    if not m.is_synced:
        return m.source
    states = []
    if m.synced is not None and m.synced.status != "active":
        states.append(m.synced.status)
    if m.synced is not None and m.synced.mapping.status != "mapped":
        states.append(m.synced.mapping.status)
    return m.source + (f" ({', '.join(states)})" if states else "")


def _life_text(m: Model) -> str:
    life = m.lifecycle
    if m.retires_at and m.lifecycle != "retired":
        life += f" (retires {m.retires_at})"
    if m.lifecycle in ("deprecated", "retired") and m.successor:
        life += f" → {m.successor}"
    return life


Search = Annotated[
    str | None,
    typer.Option(
        "--search",
        "-s",
        help="Words that must all occur in the id, name, provider or upstream model.",
    ),
]
Capability = Annotated[
    list[str] | None,
    typer.Option(
        "--capability",
        "-c",
        help="image_input, audio, negative_prompt, seed or text_to_video (repeatable: all).",
    ),
]


def models(
    search: Search = None,
    provider: Annotated[
        str | None, typer.Option("--provider", help="e.g. fal, replicate, veo.")
    ] = None,
    capability: Capability = None,
    source: Annotated[
        str | None, typer.Option("--source", help="builtin or synced.", show_default=False)
    ] = None,
    priced: Annotated[
        bool | None,
        typer.Option(
            "--priced/--unpriced",
            help="Only models with (or without) a known price.",
            show_default=False,
        ),
    ] = None,
    max_duration_gte: Annotated[
        int | None,
        typer.Option("--max-duration-gte", help="Makes videos at least this long (seconds)."),
    ] = None,
    max_duration_lte: Annotated[
        int | None,
        typer.Option("--max-duration-lte", help="Its longest video is at most this (seconds)."),
    ] = None,
    url: Url = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """The models this gateway offers: strengths, limits, price, and whether you can use them."""
    filters: dict[str, Any] = {
        "search": search,
        "provider": provider,
        "capability": capability or None,
        "source": source,
        "priced": priced,
        "max_duration_gte": max_duration_gte,
        "max_duration_lte": max_duration_lte,
    }
    filters = {k: v for k, v in filters.items() if v is not None}
    with _client(url, api_key) as client:
        found = client.models(**filters)
    if as_json:
        _print_json([dict(m.raw) for m in found])
        return
    if not found:
        err.print("no models match these filters" if filters else "this gateway lists no models")
        return
    synced = any(m.is_synced for m in found)
    cols = [
        _Col("id"),
        _Col("strong for", drop=3, wraps=True),
        _Col("max s"),
        _Col("credits/s"),
        _Col("resolutions", drop=2),
        _Col("aspect", drop=1),
        _Col("life cycle", drop=2),
        *([_Col("source", drop=2)] if synced else []),
        _Col("usable"),
    ]
    rows, notes = [], []
    for m in found:
        usable = "[green]yes[/]" if m.usable else "[red]no[/]"
        if m.emulated:
            usable += " (emulated)"
        if not m.usable and m.not_usable_reason:
            notes.append(f"{m.id}: {m.not_usable_reason}")
        elif m.synced is not None and m.synced.mapping.problems:
            notes.append(f"{m.id}: {'; '.join(m.synced.mapping.problems)}")
        rows.append(
            [
                escape(m.id),
                escape(m.strengths),
                str(m.max_duration_seconds or ""),
                _price_text(m) if m.priced else "[yellow]unpriced[/]",
                " ".join(m.allowed.resolution),
                " ".join(m.allowed.aspect_ratio),
                _life_text(m),
                *([_source_text(m)] if synced else []),
                usable,
            ]
        )
    table = _fitted("Models", cols, rows)
    out.print(table)
    for note in notes:
        out.print(f"[dim]{escape(note)}[/]", overflow="fold")


def _model_rows(m: Model) -> Iterator[tuple[str, str]]:
    yield "id", m.id
    if m.display_name != m.id:
        yield "name", m.display_name
    yield "provider", m.provider + (f" ({m.route} route)" if m.route else "")
    yield "source", _source_text(m)
    if m.strengths:
        yield "strong for", m.strengths
    usable = "yes" if m.usable else f"no: {m.not_usable_reason or 'not available'}"
    yield "usable", usable + (" (emulated)" if m.emulated else "")
    yield "life cycle", _life_text(m)
    yield "credits/s", _price_text(m)
    if m.max_duration_seconds:
        yield "max s", str(m.max_duration_seconds)
    allowed = m.allowed
    if allowed.duration_seconds:
        yield "durations", " ".join(map(str, allowed.duration_seconds))
    if allowed.resolution:
        yield "resolutions", " ".join(allowed.resolution)
    if allowed.aspect_ratio:
        yield "aspect", " ".join(allowed.aspect_ratio)
    if m.capabilities:
        yield "capabilities", ", ".join(m.capabilities)
    if m.fallback:
        yield "fallback", ", ".join(m.fallback)
    s = m.synced
    if s is None:
        return
    yield "upstream", f"{s.provider} {s.upstream_id}" + (f" ({s.category})" if s.category else "")
    yield "synced", f"{_when(s.fetched_at)}, {s.status}"
    yield "mapping", s.mapping.status + ("; image required" if s.mapping.image_required else "")
    for problem in s.mapping.problems:
        yield "problem", problem
    if s.mapping.fields:
        yield "fields", ", ".join(f"{k} → {v}" for k, v in s.mapping.fields.items())
    if s.price_source:
        yield "price from", s.price_source


def model(
    model_id: Annotated[str, typer.Argument(help="A model id (see `models`).")],
    url: Url = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """One model in detail; for a synced model, its provider inputs (for --param)."""
    with _client(url, api_key) as client:
        m = client.model(model_id)
    if as_json:
        _print_json(dict(m.raw))
        return
    table = _table(f"Model {m.id}", show_header=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in _model_rows(m):
        table.add_row(key, escape(value))
    out.print(table)
    if m.synced is None or not m.synced.provider_params:
        return
    params = _table("Provider inputs (generate --param KEY=VALUE)")
    for header in ("input", "type", "required", "allowed", "default", "description"):
        params.add_column(header, overflow="fold", no_wrap=header in ("input", "type"))
    for name, p in m.synced.provider_params.items():
        if p.enum:
            allowed = " ".join(json.dumps(v) for v in p.enum)
        elif p.minimum is not None or p.maximum is not None:
            low = "" if p.minimum is None else f"{p.minimum:g}"
            high = "" if p.maximum is None else f"{p.maximum:g}"
            allowed = f"{low}..{high}"
        else:
            allowed = ""
        default = json.dumps(p.raw["default"]) if "default" in p.raw else ""
        cells = (name, "|".join(p.type), "yes" if p.required else "", allowed, default)
        params.add_row(*(escape(c) for c in (*cells, p.description or "")))
    out.print(params)


def _jobs_table(videos: Sequence[Video]) -> Table:
    cols = [
        _Col("id"),
        _Col("model"),
        _Col("status"),
        _Col("s", drop=2),
        _Col("cost"),
        _Col("created", drop=3),
        _Col("prompt", drop=4, wraps=True),
    ]
    rows = [
        [
            v.id,
            _model_text(v),
            v.status if v.is_final else f"{v.status} {v.progress}%",
            v.seconds,
            v.cost.credits if v.cost else "",
            _when(v.created_at),
            v.prompt if len(v.prompt) <= 60 else v.prompt[:59] + "…",
        ]
        for v in videos
    ]
    return _fitted("Video jobs", cols, rows)


def jobs(
    status: Annotated[
        str | None,
        typer.Option(help="queued, in_progress, completed, failed or canceled."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
    url: Url = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Your recent video jobs, newest first."""
    with _client(url, api_key) as client:
        page = client.list(status=status, limit=limit)
    if as_json:
        _print_json([dict(v.raw) for v in page.data])
        return
    out.print(_jobs_table(page.data))
    if page.has_more:
        err.print("(more jobs: raise --limit, up to 100)")


def _detail_rows(v: Video) -> Iterator[tuple[str, str]]:
    yield "id", v.id
    yield "status", f"{v.status} ({v.progress}%)"
    yield "model", _model_text(v)
    yield "prompt", v.prompt
    p = v.params
    yield "params", f"{v.seconds} s, {p.resolution} {p.aspect_ratio} ({v.size})"
    if v.fallback:
        yield "fallback", ", ".join(v.fallback)
    yield "created", _when(v.created_at)
    if v.completed_at:
        yield "completed", _when(v.completed_at)
    if v.cost:
        yield "cost", f"{_cost(v)} for {v.units_consumed} s"
    if v.result:
        r = v.result
        yield (
            "video",
            (
                f"{r.duration_seconds} s, {r.width}x{r.height}, {r.bytes} bytes, "
                f"mirror {r.mirror_status}"
            ),
        )
        yield "url", v.result.url or ""
    if v.error:
        yield "error", f"{v.error.code}: {v.error.message}"
    for i, a in enumerate(v.attempts, 1):
        error = f" ({a.error.get('code')})" if a.error else ""
        yield f"attempt {i}", f"{a.model}: {a.outcome or 'running'}{error}"
    for key, value in v.metadata.items():
        yield f"metadata.{key}", value


def job(
    video_id: Annotated[str, typer.Argument(help="The job id (video_...).")],
    url: Url = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """One video job in detail: status, attempts, cost, result."""
    with _client(url, api_key) as client:
        v = client.get(video_id)
    if as_json:
        _print_json(dict(v.raw))
        return
    table = _table(f"Video job {v.id}", show_header=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in _detail_rows(v):
        table.add_row(key, value)
    out.print(table)


def usage(
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
    status: Annotated[str | None, typer.Option()] = None,
    model: Annotated[str | None, typer.Option()] = None,
    url: Url = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Recent requests (job, model, status, seconds, cost, time) and your balance."""
    with _client(url, api_key) as client:
        page = client.usage.recent(limit=limit, status=status, model=model)
        bal = client.balance()
    if as_json:
        _print_json({"data": [dict(r.raw) for r in page.data], "balance": dict(bal.raw)})
        return
    cols = [
        _Col("job id"),
        _Col("model"),
        _Col("status"),
        _Col("s", drop=1),
        _Col("cost"),
        _Col("time", drop=2),
        _Col("error", drop=3, wraps=True),
    ]
    rows = []
    for r in page.data:
        by = r.delivered_by if r.delivered_by and r.delivered_by != r.model else ""
        rows.append(
            [
                r.job_id,
                r.model + (f" → {by}" if by else ""),
                r.status,
                "" if r.seconds is None else str(r.seconds),
                (r.cost or "") + (f" ({r.cost_money})" if r.cost_money else ""),
                _when(r.created_at),
                r.error_code or "",
            ]
        )
    table = _fitted("Recent requests", cols, rows)
    out.print(table)
    worth = f" = {bal.money['balance']}" if "balance" in bal.money else ""
    out.print(f"balance {bal.balance} credits{worth} ({bal.held} held, {bal.available} available)")


def cancel(
    video_id: Annotated[str, typer.Argument(help="The job id (video_...).")],
    url: Url = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Cancel a job (a running one stops at the provider where it can)."""
    with _client(url, api_key) as client:
        v = client.cancel(video_id)
    if as_json:
        _print_json(dict(v.raw))
    else:
        _print_canceled(v)


def _print_canceled(v: Video) -> None:
    if v.status == "canceled":
        out.print(f"canceled {v.id}")
    elif v.is_final:
        out.print(f"{v.id} had already ended ({v.status}); nothing to cancel")
    else:
        out.print(f"cancel requested for {v.id}: it stops at its next step (now {v.status})")


def balance(url: Url = None, api_key: ApiKey = None, as_json: AsJson = False) -> None:
    """Your credits: balance, held by jobs in flight, available."""
    with _client(url, api_key) as client:
        bal = client.balance()
    if as_json:
        _print_json(dict(bal.raw))
        return
    table = _table("Credits")
    for name in ("balance", "held", "available"):
        table.add_column(name, justify="right")
    table.add_row(bal.balance, bal.held, bal.available)
    if bal.money:
        table.add_row(*(str(bal.money.get(n, "")) for n in ("balance", "held", "available")))
    out.print(table)


def usage_export(
    start: Annotated[str | None, typer.Option(help="First UTC day, YYYY-MM-DD.")] = None,
    end: Annotated[str | None, typer.Option(help="Last UTC day, included.")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file (default: stdout).")
    ] = None,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Your usage lines as CSV (one per job: model, status, seconds, credits, money)."""
    with _client(url, api_key) as client:
        text = client.usage.export_csv(start, end)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        out.print(f"wrote {max(0, text.count(chr(10)) - 1)} usage lines to {output}")


def download(
    video_id: Annotated[str, typer.Argument(help="The job id (video_...).")],
    variant: Annotated[
        str,
        typer.Option(
            "--variant",
            help="video (MP4), thumbnail (its poster, WebP) or spritesheet (JPEG).",
        ),
    ] = "video",
    out_path: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="A file or folder (default: <id>.mp4 and so on here)."),
    ] = None,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Save a finished job's video, poster or sprite sheet."""
    if variant not in VARIANTS:
        err.print(f"[red]invalid_parameter[/]: --variant must be one of {', '.join(VARIANTS)}")
        raise typer.Exit(2)
    with _client(url, api_key) as client:
        video = client.get(video_id)
        path = client.download(
            video if variant == "video" else video_id, out_path or Path.cwd(), variant=variant
        )
    out.print(f"saved {path}")


_COMMANDS: Mapping[str, Any] = {
    "generate": generate,
    "models": models,
    "model": model,
    "jobs": jobs,
    "job": job,
    "usage": usage,
    "usage-export": usage_export,
    "cancel": cancel,
    "balance": balance,
    "download": download,
    "extend": extend,
    "remix": remix,
    "storyboard": storyboard,
    "storyboard-retry": storyboard_retry,
}


def register_client_commands(app: typer.Typer) -> None:
    """Add the client commands to a typer app (``reelgate-client``'s, and the server's
    ``reelgate``)."""
    for name, command in _COMMANDS.items():
        app.command(name)(command)


app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="reelgate-client: generate videos through a reelgate gateway "
    "(REELGATE_URL, REELGATE_API_KEY).",
)
register_client_commands(app)

if __name__ == "__main__":
    app()
