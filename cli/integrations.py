"""`aico flows export|import`, `aico chat` and `aico keys create|list|revoke`: integrators' and
operators' commands over the HTTP API of a running AICO.

    aico flows export FLOW_ID [-o flow.json]     # {"name", "description", "document"}
    aico flows import flow.json [--into FLOW_ID] [--publish]
    aico keys create NAME --role editor [--scope sessions:write ...] [--expires-at ISO]
    aico chat FLOW_ID                            # talk to a flow's published version

Where: `--url` (default `http://AICO_HOST:AICO_PORT`) with `--token` (default the dev token in
`$AICO_HOME/dev-token`). An API error prints its message (which names the field at fault) and
exits 1; nothing else is printed to stdout but the result, so it pipes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import httpx

from aico.settings import Settings, get_settings


class CommandFailed(Exception):
    """An error to print as one line, exit status 1."""


def _client(args: argparse.Namespace, settings: Settings) -> httpx.Client:
    url = args.url or f"http://{settings.host}:{settings.port}"
    token = args.token
    if not token:
        path = settings.dev_token_path
        if not path.exists():
            raise CommandFailed(f"no --token given and no dev token at {path}")
        token = path.read_text().strip()
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _call(client: httpx.Client, method: str, path: str, body: Any = None) -> Any:
    try:
        response = client.request(method, path, json=body)
    except httpx.HTTPError as exc:
        raise CommandFailed(f"cannot reach AICO at {client.base_url}: {exc}") from None
    if response.status_code >= 400:
        try:
            message = response.json().get("message") or response.text
        except ValueError:
            message = response.text
        raise CommandFailed(f"{method} {path} → {response.status_code}: {message}")
    return response.json() if response.content else None


def cmd_flows_export(args: argparse.Namespace, settings: Settings) -> int:
    with _client(args, settings) as client:
        flow = _call(client, "GET", f"/v1/flows/{args.flow_id}")
    text = json.dumps({"name": flow["name"], "description": flow["description"],
                       "document": flow["document"]}, indent=2, sort_keys=True) + "\n"
    if args.output:
        Path(args.output).write_text(text)
        print(f"exported flow {flow['id']} (draft revision {flow['draft_revision']})"
              f" to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_flows_import(args: argparse.Namespace, settings: Settings) -> int:
    try:
        exported = json.loads(Path(args.file).read_text())
    except (OSError, ValueError) as exc:
        raise CommandFailed(f"cannot read {args.file}: {exc}") from None
    if not isinstance(exported, dict) or not isinstance(exported.get("document"), dict):
        raise CommandFailed(f"{args.file} is not an exported flow (no 'document' object)")
    name = exported.get("name") or exported["document"].get("name") or Path(args.file).stem
    with _client(args, settings) as client:
        if args.into:
            current = _call(client, "GET", f"/v1/flows/{args.into}")
            flow = _call(client, "PUT", f"/v1/flows/{args.into}", {
                "name": name, "description": exported.get("description", ""),
                "document": exported["document"], "draft_revision": current["draft_revision"]})
        else:
            flow = _call(client, "POST", "/v1/flows", {
                "name": name, "description": exported.get("description", ""),
                "document": exported["document"]})
        print(f"imported {args.file} as flow {flow['id']} (draft revision"
              f" {flow['draft_revision']})", file=sys.stderr)
        if args.publish:
            version = _call(client, "POST", f"/v1/flows/{flow['id']}/publish")
            print(f"published version {version['version']}", file=sys.stderr)
    print(flow["id"])
    return 0


def cmd_keys_create(args: argparse.Namespace, settings: Settings) -> int:
    body: dict[str, Any] = {"name": args.name, "role": args.role}
    if args.scope:
        body["scopes"] = args.scope
    if args.expires_at:
        body["expires_at"] = args.expires_at
    with _client(args, settings) as client:
        made = _call(client, "POST", "/v1/api-keys", body)
    print(f"API key {made['id']} ({made['role']}, scopes: {' '.join(made['scopes'] or ['all'])});"
          " shown once:", file=sys.stderr)
    print(made["key"])
    return 0


def cmd_keys_list(args: argparse.Namespace, settings: Settings) -> int:
    with _client(args, settings) as client:
        for key in _call(client, "GET", "/v1/api-keys")["items"]:
            print(f"{key['id']}  {key['role']:7}  {' '.join(key['scopes'] or ['all']):30}"
                  f"  expires {key['expires_at'] or 'never'}  {key['name']}")
    return 0


def cmd_keys_revoke(args: argparse.Namespace, settings: Settings) -> int:
    with _client(args, settings) as client:
        _call(client, "DELETE", f"/v1/api-keys/{args.key_id}")
    print(f"revoked {args.key_id}", file=sys.stderr)
    return 0


def cmd_chat(args: argparse.Namespace, settings: Settings) -> int:
    """Start a chat session and relay lines: each stdin line is a message, each reply printed
    as `agent: …`, until the session ends or stdin does."""
    with _client(args, settings) as client:
        started = _call(client, "POST", f"/v1/flows/{args.flow_id}/sessions",
                        {"channel": "chat"})
        session_id = started["id"]
        print(f"session {session_id} (flow version {started['flow_version']});"
              " type a message, Ctrl-D to leave", file=sys.stderr)
        reply = started
        while True:
            for message in reply["messages"]:
                print(f"agent: {message['text']}", flush=True)
            for action in reply.get("actions", []):
                print(f"[{action.get('kind')}] {json.dumps(action, sort_keys=True)}",
                      file=sys.stderr)
            if reply["status"] in ("ended", "failed"):
                print(f"session {reply['status']}", file=sys.stderr)
                return 0
            line = sys.stdin.readline()
            if not line:
                return 0
            if not line.strip():
                reply = {"messages": [], "status": reply["status"]}
                continue
            reply = _call(client, "POST", f"/v1/sessions/{session_id}/messages",
                          {"text": line.strip()})


def _run(handler: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(handler(args, get_settings()))
        except CommandFailed as exc:
            print(f"aico: {exc}", file=sys.stderr)
            return 1
    return run


def _where(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="the API (default http://AICO_HOST:AICO_PORT)")
    parser.add_argument("--token", help="a bearer token (default $AICO_HOME/dev-token)")


def add_integration_commands(sub: Any) -> None:
    """Register `flows` and `keys` on the `aico` parser's subcommands."""
    flows = sub.add_parser("flows", help="flow documents as files (for version control)")
    flows_sub = flows.add_subparsers(dest="flows_command", required=True)
    export = flows_sub.add_parser("export", help="write a flow's draft as JSON")
    export.add_argument("flow_id")
    export.add_argument("-o", "--output", help="file to write (default stdout)")
    _where(export)
    export.set_defaults(func=_run(cmd_flows_export))
    imp = flows_sub.add_parser("import", help="create a flow from a file (or update --into)")
    imp.add_argument("file")
    imp.add_argument("--into", metavar="FLOW_ID", help="replace this flow's draft instead")
    imp.add_argument("--publish", action="store_true", help="publish it as a new version")
    _where(imp)
    imp.set_defaults(func=_run(cmd_flows_import))

    chat = sub.add_parser("chat", help="talk to a flow in the terminal (its published version)")
    chat.add_argument("flow_id")
    _where(chat)
    chat.set_defaults(func=_run(cmd_chat))

    keys = sub.add_parser("keys", help="API keys for machines")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="mint a key (printed once)")
    create.add_argument("name")
    create.add_argument("--role", default="editor", choices=["viewer", "editor", "admin", "owner"])
    create.add_argument("--scope", action="append", help="e.g. sessions:write (repeatable)")
    create.add_argument("--expires-at", help="ISO 8601 with a time zone, e.g. 2030-01-01T00:00Z")
    _where(create)
    create.set_defaults(func=_run(cmd_keys_create))
    listing = keys_sub.add_parser("list", help="the organization's keys (never their secrets)")
    _where(listing)
    listing.set_defaults(func=_run(cmd_keys_list))
    revoke = keys_sub.add_parser("revoke", help="revoke a key at once")
    revoke.add_argument("key_id")
    _where(revoke)
    revoke.set_defaults(func=_run(cmd_keys_revoke))
