"""``hf://`` dataset files: fetched once into the Hugging Face cache, then read like local files.

The form is ``hf://datasets/OWNER/NAME[@REVISION]/PATH/IN/REPO`` (``datasets/`` may be left
out: this field only ever names a dataset). The file must be plain text or JSONL, as locally.
A file already in the cache is used without the network, so a run resumes offline.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aios_tui.errors import UserError, first_line

PREFIX = "hf://"
FORM = "hf://datasets/OWNER/NAME[@REVISION]/FILE"
_TYPES = {"datasets": "dataset", "models": "model", "spaces": "space"}


def is_hub(name: str) -> bool:
    return name.strip().startswith(PREFIX)


def looks_like_repo_id(name: str) -> bool:
    """``OWNER/NAME`` with no file suffix: a Hub dataset's name, as other tools take it; unless
    OWNER is a local directory, where a missing file (data/train) is a local path mistyped."""
    parts = name.strip().split("/")
    return (len(parts) == 2 and all(parts) and not name.startswith((".", "~"))
            and "." not in parts[1].lstrip(".") and not Path(parts[0]).is_dir())


def repo_id_problem(name: str) -> str:
    """Why a bare ``OWNER/NAME`` is not read: no such local file, and a repository is not a file."""
    from aios_tui.offline import offline_reason

    why = offline_reason()
    offline = f"; {why}, so download that file elsewhere and pass its local path" if why else ""
    return (f"dataset {name}: no such local file, and a Hub dataset is not downloaded by its name; "
            f"name one of its files as hf://datasets/{name.strip()}/FILE{offline}")


@dataclass(frozen=True)
class HubFile:
    repo_type: str
    repo_id: str
    filename: str
    revision: str | None


def parse(uri: str) -> HubFile:
    parts = uri.strip()[len(PREFIX):].split("/")
    repo_type = _TYPES.get(parts[0], "")
    if repo_type:
        parts = parts[1:]
    if len(parts) < 3 or not all(parts):
        raise UserError(f"dataset {uri}: name a file inside a repository, as {FORM} "
                        "(e.g. hf://datasets/my-org/my-data/train.jsonl)")
    name, _, revision = parts[1].partition("@")
    return HubFile(repo_type or "dataset", f"{parts[0]}/{name}", "/".join(parts[2:]), revision or None)


def fetch(uri: str) -> Path:
    """The local path of ``uri`` in the Hugging Face cache, downloading it if it is not there."""
    f = parse(uri)
    from aios_tui.offline import hub_offline, offline_reason

    hub_offline()
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (EntryNotFoundError, GatedRepoError, HfHubHTTPError,
                                        LocalEntryNotFoundError, RepositoryNotFoundError,
                                        RevisionNotFoundError)
    where = f"dataset {uri}"
    try:
        # LocalEntryNotFoundError is a kind of EntryNotFoundError, so it is caught first.
        return Path(hf_hub_download(f.repo_id, f.filename, repo_type=f.repo_type, revision=f.revision))
    except GatedRepoError:
        raise UserError(f"{where}: {f.repo_id} is gated; accept its terms on the Hub and log in "
                        "(hf auth login)") from None
    except RepositoryNotFoundError:
        raise UserError(f"{where}: no {f.repo_type} repository {f.repo_id} on the Hub "
                        "(a private one needs hf auth login)") from None
    except RevisionNotFoundError:
        raise UserError(f"{where}: {f.repo_id} has no revision {f.revision!r}") from None
    except LocalEntryNotFoundError:
        why = offline_reason() or "the Hub cannot be reached"
        raise UserError(f"{where}: {why} and the file is not in the cache "
                        f"({constants.HF_HUB_CACHE}); fetch it once on a connected machine, or "
                        "download it and pass the local path") from None
    except EntryNotFoundError:
        raise UserError(f"{where}: {f.repo_id} has no file {f.filename!r}") from None
    except (HfHubHTTPError, OSError) as exc:
        raise UserError(f"{where}: cannot be fetched ({exc})") from None
    except ValueError as exc:  # a repository id or file name the Hub would never accept
        raise UserError(f"{where}: {first_line(exc)}") from None
