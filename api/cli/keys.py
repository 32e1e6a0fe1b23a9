"""``crm keys``: the master key that protects personal data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from adapters.keys import MasterKeyError, generate_master_key
from api.cli.app import keys_app
from api.cli.common import err, fail, load_settings, out, product


@keys_app.command("rotate")
def keys_rotate(
    new_key: Annotated[
        str | None,
        typer.Option("--new-key", help="The new master key (base64); a random one if absent."),
    ] = None,
) -> None:
    """Re-wrap every data key under a new master key (events are not touched).

    Stop the API and the projectors first, and start them again with the new key."""
    from adapters.keys import decode_master_key, write_key_file

    settings = load_settings()
    text = new_key or generate_master_key()
    try:
        new_master = decode_master_key(text, origin="--new-key")
    except MasterKeyError as error:
        raise fail(str(error)) from None
    with product() as crm:
        count = crm.keys.rotate(new_master)
    if settings.master_key:
        err.print(f"re-wrapped {count} keys; set CRM_MASTER_KEY to the new master key:")
        out.print(text, highlight=False)
    else:
        write_key_file(Path(settings.key_file), text)
        err.print(f"re-wrapped {count} keys; the new master key replaced {settings.key_file}")


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new random master key (for CRM_MASTER_KEY or a key file)."""
    out.print(generate_master_key(), highlight=False)
