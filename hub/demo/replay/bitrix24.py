"""A local Bitrix24 portal that replays the documented REST API (bitrix-tools/b24-rest-docs): the
webhook and OAuth paths, `batch` with `$result[...]`, lists of 50 with `next`/`total` and the
fast form (`start: -1`), the leaky bucket (503 QUERY_LIMIT_EXCEEDED), OPERATION_TIME_LIMIT,
token expiry and rotation, errors as the portal answers them, outages; classic or simple mode.

It implements `CrmReplay` (hub/demo/replay/__init__.py): the demo and the tests drive it the
same way as the amoCRM replay. State is in memory; the clock can be moved forward."""

from __future__ import annotations

import json
import logging
import math
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from connectors.bitrix24 import ORIGINATOR
from hub.demo.replay import CrmSnapshot
from hub.demo.replay.server import LocalServer, local_server

log = logging.getLogger(__name__)
ENTITY_TYPE_IDS = {"lead": 1, "deal": 2, "contact": 3, "company": 4}
MULTI_FIELDS = ("PHONE", "EMAIL", "WEB", "IM")
PAGE = 50
_HUB_MARKER = re.compile(r"\s*\[hub:[0-9a-f]{8}:[a-z_]+:\d+[^\]]*\]\s*$")
_HUB_REF = re.compile(r"^hub:[0-9a-f]{8}:(.+)$")


class ApiError(Exception):
    """An answer with Bitrix24's error body."""

    def __init__(self, status: int, code: str, description: str = "") -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.description = description


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).astimezone().isoformat(timespec="seconds")


def _parse_time(value: Any) -> float | None:
    if value in (None, ""):
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _lead_ref(row: dict[str, Any]) -> str | None:
    ref = _strip_ref(row.get("ORIGIN_ID")) if row.get("ORIGINATOR_ID") == ORIGINATOR else None
    return ref if ref and ref.startswith("crm_leads:") else None


def _strip_ref(value: str | None) -> str | None:
    """hub:<instance>:<table>:<id> without the store's random instance id (two stores compare)."""
    match = _HUB_REF.match(value or "")
    return match.group(1) if match else value


# ---------------------------------------------------------------- PHP-style query strings


def parse_query(query: str) -> dict[str, Any]:
    """What PHP's parse_str makes of `a[b][0]=x&c=1` (batch commands are query strings)."""
    root: dict[str, Any] = {}
    for raw_key, value in parse_qsl(query, keep_blank_values=True):
        head, _, rest = raw_key.partition("[")
        keys = [head] + (re.findall(r"\[([^\]]*)\]", "[" + rest) if rest else [])
        node: Any = root
        for i, key in enumerate(keys):
            last = i == len(keys) - 1
            if isinstance(node, list):
                key = len(node) if key == "" else int(key) if key.isdigit() else key
            if isinstance(node, dict):
                if key == "":
                    key = str(len(node))
                if last:
                    node[key] = value
                else:
                    node = node.setdefault(key, {})
    return _listify(root)


def _listify(value: Any) -> Any:
    if isinstance(value, dict):
        items = {k: _listify(v) for k, v in value.items()}
        if (
            items
            and all(k.isdigit() for k in items)
            and sorted(int(k) for k in items) == list(range(len(items)))
        ):
            return [items[str(i)] for i in range(len(items))]
        return items
    return value


_RESULT_REF = re.compile(r"\$result((?:\[[^\]]*\])+)")


def _substitute(value: Any, results: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, results) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, results) for v in value]
    if not isinstance(value, str) or "$result" not in value:
        return value

    def resolve(match: re.Match[str]) -> str:
        node: Any = results
        for key in re.findall(r"\[([^\]]*)\]", match.group(1)):
            if isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            elif isinstance(node, dict) and key in node:
                node = node[key]
            else:
                return ""
        return "" if isinstance(node, dict | list) else str(node)

    return _RESULT_REF.sub(resolve, value)


# ---------------------------------------------------------------- filters, order, select


def _compare(left: Any, right: Any) -> tuple[Any, Any]:
    lt, rt = _parse_time(left) if isinstance(left, str) and "T" in left else None, None
    if lt is not None:
        rt = _parse_time(right)
        if rt is not None:
            return lt, rt
    try:
        return float(left), float(right)
    except (TypeError, ValueError):
        return str(left if left is not None else ""), str(right if right is not None else "")


def _matches(row: dict[str, Any], flt: dict[str, Any]) -> bool:
    for raw_key, want in (flt or {}).items():
        match = re.match(r"^(>=|<=|!@|!=%|!%|=%|%=|!=|>|<|@|!|%|=)?(.+)$", raw_key)
        assert match is not None
        op, name = match.group(1) or "=", match.group(2)
        have = _lookup(row, name)
        if op in ("@", "!@"):
            values = want if isinstance(want, list) else [want]
            inside = any(_compare(have, v)[0] == _compare(have, v)[1] for v in values)
            if inside != (op == "@"):
                return False
            continue
        if op in ("%", "=%", "%=", "!%", "!=%"):
            found = str(want).strip("%").lower() in str(have or "").lower()
            if found != (not op.startswith("!")):
                return False
            continue
        if isinstance(have, list):
            hits = any(str(item) == str(want) for item in have)
            if hits != (op not in ("!", "!=")):
                return False
            continue
        left, right = _compare(have, want)
        ok = {
            "=": left == right,
            "!": left != right,
            "!=": left != right,
            ">": left > right,
            ">=": left >= right,
            "<": left < right,
            "<=": left <= right,
        }[op]
        if not ok:
            return False
    return True


def _lookup(row: dict[str, Any], name: str) -> Any:
    if name in row:
        return row[name]
    for key, value in row.items():
        if key.lower() == name.lower() or key.replace("_", "").lower() == name.replace("_", "").lower():
            return value
    return None


def _ordered(rows: list[dict[str, Any]], order: Any) -> list[dict[str, Any]]:
    if not isinstance(order, dict) or not order:
        return sorted(rows, key=lambda r: int(_lookup(r, "ID") or 0))
    for name, direction in reversed(list(order.items())):
        rows = sorted(
            rows,
            key=lambda r: _compare(_lookup(r, name), _lookup(r, name))[0],
            reverse=str(direction).upper() == "DESC",
        )
    return rows


def _page(rows: list[Any], start: Any) -> tuple[list[Any], dict[str, Any]]:
    try:
        offset = int(start or 0)
    except (TypeError, ValueError):
        offset = 0
    if offset < 0:
        return rows[:PAGE], {"total": 0}
    chunk = rows[offset : offset + PAGE]
    extra: dict[str, Any] = {"total": len(rows)}
    if offset + PAGE < len(rows):
        extra["next"] = offset + PAGE
    return chunk, extra


# ---------------------------------------------------------------- the portal


@dataclass
class Limits:
    burst: float = 50.0  # X: the bucket's size
    drain_per_s: float = 2.0  # Y
    operating_limit_s: float = 480.0
    operating_cost_s: dict[str, float] = field(default_factory=dict)  # method -> server seconds a call
    access_ttl_s: float = 3600.0
    refresh_ttl_s: float = 28 * 86400.0


@dataclass
class Portal:
    """A Bitrix24 portal's state."""

    mode: int = 1  # 1 classic (with leads), 2 simple
    limits: Limits = field(default_factory=Limits)
    clock: Callable[[], float] = time.time
    user_id: int = 1
    webhook_secret: str = field(default_factory=lambda: secrets.token_hex(8))
    client_id: str = "local.hub0000000001.00000001"
    client_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    offset_s: float = 0.0

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self.users: dict[int, dict[str, Any]] = {}
        self.categories: list[dict[str, Any]] = [{"id": 0, "name": "Общая", "sort": 100, "isDefault": "Y"}]
        self.statuses: list[dict[str, Any]] = []
        self.entities: dict[str, dict[int, dict[str, Any]]] = {k: {} for k in ENTITY_TYPE_IDS}
        self.userfields: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in ENTITY_TYPE_IDS}
        self.tasks: dict[int, dict[str, Any]] = {}
        self.comments: dict[int, dict[str, Any]] = {}
        self.calls: dict[str, dict[str, Any]] = {}  # registered, by CALL_ID
        self.statistic: list[dict[str, Any]] = []
        self.activities: dict[int, dict[str, Any]] = {}
        self.history: list[dict[str, Any]] = []
        self.ids: dict[str, int] = {}
        self.tokens: dict[str, float] = {}  # access token -> expires at
        self.refresh_tokens: dict[str, float] = {}
        self.codes: set[str] = set()
        self.requests = 0
        self.log: list[str] = []  # methods called, batch commands included
        self.outage_left = 0
        self.bucket = 0.0
        self.bucket_at = 0.0
        self.operating: dict[str, list[tuple[float, float]]] = {}
        self._stage_defaults(0)
        for sid, name, sort, sem in (
            ("NEW", "Не обработан", 10, None),
            ("IN_PROCESS", "В работе", 20, None),
            ("CONVERTED", "Качественный лид", 60, "S"),
            ("JUNK", "Некачественный лид", 70, "F"),
        ):
            self._status("STATUS", sid, name, sort, sem, None)
        for sid, name in (
            ("WEB", "Веб-сайт"),
            ("CALL", "Звонок"),
            ("EMAIL", "Электронная почта"),
            ("OTHER", "Другое"),
        ):
            self._status("SOURCE", sid, name, 10, None, None)

    # ------------------------------------------------------------ helpers

    def now(self) -> float:
        return self.clock() + self.offset_s

    def next_id(self, kind: str) -> int:
        self.ids[kind] = self.ids.get(kind, 0) + 1
        return self.ids[kind]

    def _status(
        self, entity: str, sid: str, name: str, sort: int, sem: str | None, category: int | None
    ) -> None:
        self.statuses.append(
            {
                "ID": str(self.next_id("status")),
                "ENTITY_ID": entity,
                "STATUS_ID": sid,
                "NAME": name,
                "NAME_INIT": name,
                "SORT": str(sort),
                "SYSTEM": "N",
                "CATEGORY_ID": None if category is None else str(category),
                "SEMANTICS": sem,
                "EXTRA": {"SEMANTICS": {"S": "success", "F": "failure"}.get(sem or "", "process")},
            }
        )

    def _stage_defaults(self, category: int, stages: list[str] | None = None) -> None:
        entity = "DEAL_STAGE" if category == 0 else f"DEAL_STAGE_{category}"
        prefix = "" if category == 0 else f"C{category}:"
        self.statuses = [s for s in self.statuses if s["ENTITY_ID"] != entity]
        names = stages or ["Новая", "Подготовка документов", "В работе"]
        ids = ["NEW", "PREPARATION", "EXECUTING"] if stages is None else [f"S{i}" for i in range(len(names))]
        if stages is not None:
            ids[0] = "NEW"
        for i, (sid, name) in enumerate(zip(ids, names, strict=True)):
            self._status(entity, prefix + sid, name, (i + 1) * 10, None, category)
        self._status(entity, prefix + "WON", "Сделка успешна", 900, "S", category)
        self._status(entity, prefix + "LOSE", "Сделка провалена", 910, "F", category)

    def stages_of(self, category: int) -> list[dict[str, Any]]:
        entity = "DEAL_STAGE" if category == 0 else f"DEAL_STAGE_{category}"
        return sorted((s for s in self.statuses if s["ENTITY_ID"] == entity), key=lambda s: int(s["SORT"]))

    def touch(self, row: dict[str, Any], field_name: str = "DATE_MODIFY") -> None:
        """A modification stamp strictly after the previous one (people do not edit a card twice a
        second; without this, two edits in one second look like one to an incremental reader)."""
        now = self.now()
        previous = _parse_time(row.get(field_name)) or 0.0
        row[field_name] = _iso(max(now, previous + 1))

    def user_email(self, user_id: Any) -> str | None:
        user = self.users.get(int(user_id or 0))
        return user["EMAIL"] if user else None

    def user_by_email(self, email: str) -> int:
        for uid, user in self.users.items():
            if user["EMAIL"].lower() == email.lower():
                return uid
        raise KeyError(f"no Bitrix24 user with e-mail {email}")

    # ------------------------------------------------------------ limits

    def admit(self) -> None:
        """The leaky bucket: each request fills it by one, it drains Y a second; full: 503."""
        now = self.now()
        self.bucket = max(0.0, self.bucket - (now - self.bucket_at) * self.limits.drain_per_s)
        self.bucket_at = now
        if self.bucket + 1 > self.limits.burst + 1e-9:
            raise ApiError(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")
        self.bucket += 1

    def operate(self, method: str) -> dict[str, Any]:
        """Charge a method's server time; OPERATION_TIME_LIMIT once it is over the budget."""
        now = self.now()
        window = [(t, c) for t, c in self.operating.get(method, []) if t > now - 600]
        used = sum(c for _, c in window)
        if used > self.limits.operating_limit_s:
            self.operating[method] = window
            raise ApiError(429, "OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit")
        cost = self.limits.operating_cost_s.get(method, 0.0)
        if cost:
            window.append((now, cost))
        self.operating[method] = window
        reset = (window[0][0] + 600) if window else now + 600
        return {"operating": used + cost, "operating_reset_at": math.ceil(reset)}

    def time_block(self, started: float, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        finished = self.now()
        return {
            "start": started,
            "finish": finished,
            "duration": finished - started,
            "processing": finished - started,
            "date_start": _iso(started),
            "date_finish": _iso(finished),
            **(extra or {}),
        }

    # ------------------------------------------------------------ auth

    def issue_tokens(self) -> dict[str, Any]:
        access, refresh = secrets.token_hex(16), secrets.token_hex(16)
        now = self.now()
        self.tokens[access] = now + self.limits.access_ttl_s
        self.refresh_tokens[refresh] = now + self.limits.refresh_ttl_s
        return {
            "access_token": access,
            "refresh_token": refresh,
            "expires": int(now + self.limits.access_ttl_s),
            "expires_in": int(self.limits.access_ttl_s),
            "client_endpoint": "",  # filled by the handler with the server's address
            "domain": "oauth.bitrix24.tech",
            "member_id": "a223c6b3710f85df22e9377d6c4f7553",
            "scope": "crm,task,telephony,user",
            "status": "L",
            "user_id": self.user_id,
        }

    def issue_code(self) -> str:
        code = secrets.token_hex(8)
        self.codes.add(code)
        return code

    def oauth(self, params: dict[str, str]) -> dict[str, Any]:
        if params.get("client_id") != self.client_id or params.get("client_secret") != self.client_secret:
            raise ApiError(401, "invalid_client", "Invalid client credentials")
        grant = params.get("grant_type")
        if grant == "authorization_code":
            if params.get("code") not in self.codes:
                raise ApiError(400, "invalid_grant", "Invalid authorization code")
            self.codes.discard(params["code"])
            return self.issue_tokens()
        if grant == "refresh_token":
            token = params.get("refresh_token") or ""
            expires = self.refresh_tokens.pop(token, None)  # rotated: usable once
            if expires is None or expires < self.now():
                raise ApiError(400, "invalid_grant", "Invalid refresh token")
            return self.issue_tokens()
        raise ApiError(400, "invalid_request", "Unsupported grant_type")

    def check_token(self, token: str | None) -> None:
        if not token:
            raise ApiError(401, "NO_AUTH_FOUND", "Wrong authorization data")
        expires = self.tokens.get(token)
        if expires is None:
            raise ApiError(401, "invalid_token", "The access token provided is invalid.")
        if expires < self.now():
            raise ApiError(401, "expired_token", "The access token provided has expired.")

    # ------------------------------------------------------------ methods

    def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """One method: {"result": ..., "total"?, "next"?} or ApiError."""
        name = method.lower().removesuffix(".json")
        self.log.append(name)
        handler = METHODS.get(name)
        if handler is None:
            raise ApiError(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")
        return handler(self, _CaseParams(params))

    def batch(self, params: dict[str, Any]) -> dict[str, Any]:
        commands = params.get("cmd") or {}
        if isinstance(commands, list):
            commands = {str(i): c for i, c in enumerate(commands)}
        halt = str(params.get("halt", "0")).lower() in ("1", "true", "y")
        out: dict[str, Any] = {
            "result": {},
            "result_error": {},
            "result_total": {},
            "result_next": {},
            "result_time": {},
        }
        for index, (key, command) in enumerate(commands.items()):
            if index >= 50:
                out["result_error"][key] = {
                    "error": "ERROR_BATCH_LENGTH_EXCEEDED",
                    "error_description": "Max batch length exceeded",
                }
                continue
            method, _, query = str(command).partition("?")
            started = self.now()
            try:
                if method.lower() == "batch":
                    raise ApiError(
                        405, "ERROR_BATCH_METHOD_NOT_ALLOWED", "Method is not allowed for batch usage"
                    )
                extra = self.operate(method.lower())
                sub = _substitute(parse_query(query), out["result"])
                answer = self.call(method, sub)
            except ApiError as exc:
                out["result_error"][key] = {"error": exc.code, "error_description": exc.description}
                if halt:
                    break
                continue
            out["result"][key] = answer["result"]
            if "total" in answer:
                out["result_total"][key] = answer["total"]
            if "next" in answer:
                out["result_next"][key] = answer["next"]
            out["result_time"][key] = self.time_block(started, extra)
        # PHP answers an empty associative array as [].
        return {"result": {k: (v if v else []) for k, v in out.items()}}


class _CaseParams(dict):  # type: ignore[type-arg]
    """Top-level parameter names are case-insensitive in the classic methods (id / ID)."""

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        for name in (key, key.lower(), key.upper()):
            if dict.__contains__(self, name):
                return dict.__getitem__(self, name)
        for name, value in self.items():
            if name.lower() == key.lower():
                return value
        return default


# ---------------------------------------------------------------- CRM entities


def _multi(portal: Portal, values: Any, kind: str) -> list[dict[str, Any]]:
    out = []
    for item in values if isinstance(values, list) else []:
        if isinstance(item, dict) and item.get("VALUE"):
            out.append(
                {
                    "ID": str(portal.next_id("multi")),
                    "VALUE_TYPE": item.get("VALUE_TYPE") or "WORK",
                    "VALUE": str(item["VALUE"]),
                    "TYPE_ID": kind,
                }
            )
    return out


def _require_user(portal: Portal, value: Any, name: str) -> None:
    if value in (None, ""):
        return
    try:
        uid = int(value)
    except (TypeError, ValueError):
        raise ApiError(400, "", f"{name}: wrong user id") from None
    if uid not in portal.users:
        raise ApiError(400, "", f"The user with ID {uid} was not found")


def _apply_fields(
    portal: Portal, entity: str, row: dict[str, Any], fields: dict[str, Any], new: bool
) -> None:
    for key, value in fields.items():
        key = str(key).upper()
        if key in MULTI_FIELDS:
            row[key] = (
                (row.get(key) or []) + _multi(portal, value, key) if not new else _multi(portal, value, key)
            )
        elif key.startswith("UF_CRM_"):
            if key not in portal.userfields[entity]:
                continue  # an unknown field in `fields` is ignored, as the portal does
            row[key] = value
        elif key in ("ID", "DATE_CREATE", "DATE_MODIFY", "CREATED_BY_ID", "MODIFY_BY_ID"):
            continue
        elif key == "OPPORTUNITY" and value not in (None, ""):
            row[key] = f"{float(value):.2f}"  # the portal answers money as "15000.00"
        else:
            row[key] = (
                value
                if isinstance(value, str | int | float | bool | list | dict) or value is None
                else str(value)
            )
    if "ASSIGNED_BY_ID" in row:
        _require_user(portal, row["ASSIGNED_BY_ID"], "ASSIGNED_BY_ID")


def _entity_add(entity: str) -> Callable[[Portal, _CaseParams], dict[str, Any]]:
    def add(portal: Portal, params: _CaseParams) -> dict[str, Any]:
        if entity == "lead" and portal.mode == 2:
            raise ApiError(400, "", "Leads are disabled in the simple CRM mode")
        fields = params.get("fields")
        if not isinstance(fields, dict):
            raise ApiError(400, "", "Parameter 'fields' must be array.")
        if entity in ("lead", "deal", "company") and not fields.get("TITLE") and entity != "lead":
            fields = {
                **fields,
                "TITLE": fields.get("TITLE") or f"{entity.title()} #{portal.ids.get(entity, 0) + 1}",
            }
        row: dict[str, Any] = {"ID": str(portal.next_id(entity)), "ASSIGNED_BY_ID": str(portal.user_id)}
        _apply_fields(portal, entity, row, fields, new=True)
        row["CREATED_BY_ID"] = str(portal.user_id)
        row["DATE_CREATE"] = _iso(portal.now())
        portal.touch(row)
        row.setdefault("ORIGINATOR_ID", None)
        row.setdefault("ORIGIN_ID", None)
        if entity == "deal":
            category = int(row.get("CATEGORY_ID") or 0)
            if not any(int(c["id"]) == category for c in portal.categories):
                raise ApiError(400, "", f"Category {category} not found")
            stages = portal.stages_of(category)
            if not row.get("STAGE_ID"):
                row["STAGE_ID"] = stages[0]["STATUS_ID"]
            elif row["STAGE_ID"] not in {s["STATUS_ID"] for s in stages}:
                raise ApiError(400, "", f"Stage {row['STAGE_ID']} is not found in category {category}")
            row["CATEGORY_ID"] = str(category)
            _set_deal_semantics(portal, row)
            portal.history.append(_history(portal, row, 1))
        if entity == "lead":
            row.setdefault("STATUS_ID", "NEW")
            row["STATUS_SEMANTIC_ID"] = "P"
        portal.entities[entity][int(row["ID"])] = row
        return {"result": int(row["ID"])}

    return add


def _set_deal_semantics(portal: Portal, row: dict[str, Any]) -> None:
    stage = next(
        (s for s in portal.stages_of(int(row["CATEGORY_ID"])) if s["STATUS_ID"] == row["STAGE_ID"]), None
    )
    semantic = (stage or {}).get("SEMANTICS") or "P"
    row["STAGE_SEMANTIC_ID"] = semantic
    row["CLOSED"] = "Y" if semantic in ("S", "F") else "N"
    if row["CLOSED"] == "Y":
        row["CLOSEDATE"] = _iso(portal.now())


def _history(portal: Portal, row: dict[str, Any], type_id: int) -> dict[str, Any]:
    return {
        "ID": portal.next_id("history"),
        "TYPE_ID": type_id,
        "OWNER_ID": int(row["ID"]),
        "CREATED_TIME": _iso(portal.now()),
        "CATEGORY_ID": int(row.get("CATEGORY_ID") or 0),
        "STAGE_SEMANTIC_ID": row.get("STAGE_SEMANTIC_ID") or "P",
        "STAGE_ID": row["STAGE_ID"],
    }


def _entity_row(portal: Portal, entity: str, params: _CaseParams) -> dict[str, Any]:
    try:
        entity_id = int(params.get("id") or 0)
    except (TypeError, ValueError):
        entity_id = 0
    if entity_id <= 0:
        raise ApiError(400, "", "ID is not defined or invalid.")
    row = portal.entities[entity].get(entity_id)
    if row is None:
        raise ApiError(400, "", "Not found")
    return row


def _entity_update(entity: str) -> Callable[[Portal, _CaseParams], dict[str, Any]]:
    def update(portal: Portal, params: _CaseParams) -> dict[str, Any]:
        row = _entity_row(portal, entity, params)
        fields = params.get("fields")
        if not isinstance(fields, dict):
            raise ApiError(400, "", "Parameter 'fields' must be array.")
        stage_before = row.get("STAGE_ID")
        _apply_fields(portal, entity, row, fields, new=False)
        portal.touch(row)
        row["MODIFY_BY_ID"] = str(portal.user_id)
        if entity == "deal" and row.get("STAGE_ID") != stage_before:
            _set_deal_semantics(portal, row)
            portal.history.append(_history(portal, row, 3 if row["CLOSED"] == "Y" else 2))
        return {"result": True}

    return update


def _select(row: dict[str, Any], select: Any) -> dict[str, Any]:
    wanted = [str(s) for s in select] if isinstance(select, list) and select else ["*"]
    out: dict[str, Any] = {}
    for key, value in row.items():
        multi = key in MULTI_FIELDS
        user = key.startswith("UF_")
        if (
            key in wanted
            or key == "ID"
            or ("*" in wanted and not multi and not user)
            or ("UF_*" in wanted and user)
        ):
            out[key] = value
    return out


def _entity_get(entity: str) -> Callable[[Portal, _CaseParams], dict[str, Any]]:
    def get(portal: Portal, params: _CaseParams) -> dict[str, Any]:
        row = _entity_row(portal, entity, params)
        return {"result": _select(row, ["*", "UF_*", *MULTI_FIELDS])}

    return get


def _entity_list(entity: str) -> Callable[[Portal, _CaseParams], dict[str, Any]]:
    def list_(portal: Portal, params: _CaseParams) -> dict[str, Any]:
        if entity == "lead" and portal.mode == 2:
            return {"result": [], "total": 0}
        rows = [r for r in portal.entities[entity].values() if _matches(r, params.get("filter") or {})]
        rows = _ordered(rows, params.get("order"))
        chunk, extra = _page(rows, params.get("start"))
        return {"result": [_select(r, params.get("select")) for r in chunk], **extra}

    return list_


def _userfield_add(entity: str) -> Callable[[Portal, _CaseParams], dict[str, Any]]:
    def add(portal: Portal, params: _CaseParams) -> dict[str, Any]:
        fields = params.get("fields") or {}
        name = str(fields.get("FIELD_NAME") or "").upper()
        if not name:
            raise ApiError(400, "", "The 'FIELD_NAME' field is not found")
        if not fields.get("USER_TYPE_ID"):
            raise ApiError(400, "", "The 'USER_TYPE_ID' field is not found")
        if name.startswith("UF_CRM_"):
            full = name
        elif name.startswith("UF_"):
            full = "UF_CRM_" + name[3:]
        else:
            full = "UF_CRM_" + name
        if not re.fullmatch(r"[A-Z0-9_]+", full) or len(full) > 50:
            raise ApiError(400, "ERROR_CORE", "Field name is invalid")
        if full in portal.userfields[entity]:
            raise ApiError(400, "ERROR_CORE", "A field with this code already exists")
        field_id = portal.next_id("userfield")
        portal.userfields[entity][full] = {
            "ID": str(field_id),
            "ENTITY_ID": f"CRM_{entity.upper()}",
            "FIELD_NAME": full,
            "USER_TYPE_ID": fields["USER_TYPE_ID"],
            "XML_ID": fields.get("XML_ID"),
            "SORT": str(fields.get("SORT") or 100),
            "MULTIPLE": fields.get("MULTIPLE") or "N",
            "MANDATORY": "N",
        }
        return {"result": field_id}

    return add


def _userfield_list(entity: str) -> Callable[[Portal, _CaseParams], dict[str, Any]]:
    def list_(portal: Portal, params: _CaseParams) -> dict[str, Any]:
        rows = [f for f in portal.userfields[entity].values() if _matches(f, params.get("filter") or {})]
        return {"result": rows, "total": len(rows)}

    return list_


def _users(portal: Portal, params: _CaseParams) -> dict[str, Any]:
    flt = params.get("FILTER") or params.get("filter") or {}
    rows = [u for u in portal.users.values() if _matches(u, flt)]
    rows = sorted(rows, key=lambda u: int(u["ID"]))
    chunk, extra = _page(rows, params.get("start"))
    return {"result": chunk, **extra}


def _mode(portal: Portal, params: _CaseParams) -> dict[str, Any]:
    return {"result": portal.mode}


def _categories(portal: Portal, params: _CaseParams) -> dict[str, Any]:
    if int(params.get("entityTypeId") or 0) != 2:
        raise ApiError(400, "NOT_FOUND", "Entity type not supported")
    rows = [{**c, "entityTypeId": 2} for c in portal.categories]
    return {"result": {"categories": rows}, "total": len(rows)}


def _statuses(portal: Portal, params: _CaseParams) -> dict[str, Any]:
    rows = [s for s in portal.statuses if _matches(s, params.get("filter") or {})]
    return {"result": _ordered(rows, params.get("order") or {"SORT": "ASC"})}


def _stagehistory(portal: Portal, params: _CaseParams) -> dict[str, Any]:
    if int(params.get("entityTypeId") or 0) != 2:
        raise ApiError(400, "ENTITY_TYPE_NOT_SUPPORTED", "Entity type is not supported")
    rows = [h for h in portal.history if _matches(h, params.get("filter") or {})]
    rows = _ordered(rows, params.get("order"))
    chunk, extra = _page(rows, params.get("start"))
    return {"result": {"items": chunk}, **extra}


def _duplicates(portal: Portal, params: _CaseParams) -> dict[str, Any]:
    kind = str(params.get("type") or "").upper()
    if not kind:
        raise ApiError(400, "Communication type is not defined", "Parameter 'type' is required.")
    if kind not in ("PHONE", "EMAIL"):
        raise ApiError(400, "", f"Communication type '{kind}' is not supported in current context")
    values = params.get("values")
    if not values:
        raise ApiError(400, "", "Communication values is not defined")
    values = values if isinstance(values, list) else [values]

    def norm(value: str) -> str:
        return re.sub(r"\D", "", value)[-10:] if kind == "PHONE" else value.strip().lower()

    wanted = {norm(str(v)) for v in values[:20]}
    types = (
        [str(params.get("entity_type")).lower()]
        if params.get("entity_type")
        else ["lead", "contact", "company"]
    )
    found: dict[str, list[int]] = {}
    for entity in types:
        ids = [
            int(row["ID"])
            for row in portal.entities.get(entity, {}).values()
            if any(norm(m["VALUE"]) in wanted for m in row.get(kind) or [])
        ]
        if ids:
            found[entity.upper()] = sorted(ids)
    return {"result": found or []}


# ---------------------------------------------------------------- tasks

_TASK_FIELDS = {
    "TITLE": "title",
    "DESCRIPTION": "description",
    "RESPONSIBLE_ID": "responsibleId",
    "CREATED_BY": "createdBy",
    "DEADLINE": "deadline",
    "XML_ID": "xmlId",
    "UF_CRM_TASK": "ufCrmTask",
    "TAGS": "tags",
    "STATUS": "status",
    "PRIORITY": "priority",
}


def _task_fields(portal: Portal, task: dict[str, Any], fields: dict[str, Any]) -> None:
    for key, value in fields.items():
        name = _TASK_FIELDS.get(str(key).upper())
        if name is None:
            continue
        task[name] = value if isinstance(value, list) else ("" if value is None else str(value))
    _require_user(portal, task.get("responsibleId"), "RESPONSIBLE_ID")


def _task_add(portal: Portal, params: _CaseParams) -> dict[str, Any]:
    fields = params.get("fields") or {}
    if not fields.get("TITLE"):
        raise ApiError(400, "ERROR_CORE", "TITLE: Не указано название задачи")
    if not fields.get("RESPONSIBLE_ID"):
        raise ApiError(400, "ERROR_CORE", "RESPONSIBLE_ID: Не указан ответственный")
    now = _iso(portal.now())
    task: dict[str, Any] = {
        "id": str(portal.next_id("task")),
        "createdBy": str(portal.user_id),
        "createdDate": now,
        "status": "2",
        "closedDate": None,
        "deadline": None,
        "xmlId": None,
        "ufCrmTask": [],
        "tags": [],
        "description": "",
    }
    _task_fields(portal, task, fields)
    portal.touch(task, "changedDate")
    portal.tasks[int(task["id"])] = task
    return {"result": {"task": dict(task)}}


def _task_row(portal: Portal, params: _CaseParams) -> dict[str, Any]:
    task = portal.tasks.get(int(params.get("taskId") or 0))
    if task is None:
        raise ApiError(400, "ERROR_CORE", "Задача не найдена или доступ запрещен")
    return task


def _task_update(portal: Portal, params: _CaseParams) -> dict[str, Any]:
    task = _task_row(portal, params)
    fields = params.get("fields") or {}
    if not fields:
        raise ApiError(400, "ERROR_CORE", "Fields are empty")
    _task_fields(portal, task, fields)
    portal.touch(task, "changedDate")
    return {"result": {"task": dict(task)}}


def _task_complete(portal: Portal, params: _CaseParams) -> dict[str, Any]:
    task = _task_row(portal, params)
    task["status"] = "5"
    task["closedDate"] = _iso(portal.now())
    portal.touch(task, "changedDate")
    return {"result": {"task": dict(task)}}


def _task_get(portal: Portal, params: _CaseParams) -> dict[str, Any]:
    return {"result": {"task": dict(_task_row(portal, params))}}


def _task_list(portal: Portal, params: _CaseParams) -> dict[str, Any]:
    flt = dict(params.get("filter") or {})
    crm = flt.pop("UF_CRM_TASK", None)
    rows = [
        t
        for t in portal.tasks.values()
        if _matches(_task_view(t), flt)
        and (crm is None or any(str(c) in t["ufCrmTask"] for c in _as_list(crm)))
    ]
    rows = _ordered(rows, {k.upper(): v for k, v in (params.get("order") or {"ID": "desc"}).items()})
    chunk, extra = _page(rows, params.get("start"))
    return {"result": {"tasks": [dict(t) for t in chunk]}, **extra}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _task_view(task: dict[str, Any]) -> dict[str, Any]:
    """Filter names of tasks.task.list (ID, TITLE, RESPONSIBLE_ID, CHANGED_DATE, REAL_STATUS...)."""
    return {
        "ID": task["id"],
        "TITLE": task.get("title"),
        "RESPONSIBLE_ID": task.get("responsibleId"),
        "CREATED_BY": task.get("createdBy"),
        "CREATED_DATE": task.get("createdDate"),
        "CHANGED_DATE": task.get("changedDate"),
        "CLOSED_DATE": task.get("closedDate"),
        "DEADLINE": task.get("deadline"),
        "REAL_STATUS": task.get("status"),
        "STATUS": task.get("status"),
        "TAG": task.get("tags"),
    }


# ---------------------------------------------------------------- timeline and telephony


def _comment_add(portal: Portal, params: _CaseParams) -> dict[str, Any]:
    fields = params.get("fields")
    if not isinstance(fields, dict):
        raise ApiError(400, "", "Parameter 'fields' must be array")
    entity = str(fields.get("ENTITY_TYPE") or "").lower()
    if entity not in ENTITY_TYPE_IDS:
        raise ApiError(400, "", "ENTITY_TYPE is not defined or invalid")
    entity_id = int(fields.get("ENTITY_ID") or 0)
    if entity_id not in portal.entities[entity]:
        raise ApiError(400, "", "Entity not found")
    if not fields.get("COMMENT"):
        raise ApiError(400, "", "COMMENT is empty")
    comment_id = portal.next_id("comment")
    portal.comments[comment_id] = {
        "ID": str(comment_id),
        "ENTITY_ID": str(entity_id),
        "ENTITY_TYPE": entity,
        "CREATED": _iso(portal.now()),
        "COMMENT": str(fields["COMMENT"]),
        "AUTHOR_ID": str(portal.user_id),
    }
    return {"result": comment_id}


def _comment_list(portal: Portal, params: _CaseParams) -> dict[str, Any]:
    flt = params.get("filter") or {}
    if not flt.get("ENTITY_ID") or not flt.get("ENTITY_TYPE"):
        raise ApiError(400, "", "ENTITY_ID and ENTITY_TYPE are required in filter")
    rows = [c for c in portal.comments.values() if _matches(c, flt)]
    chunk, extra = _page(_ordered(rows, params.get("order")), params.get("start"))
    return {"result": chunk, **extra}


def _call_register(portal: Portal, params: _CaseParams) -> dict[str, Any]:
    user = params.get("USER_ID")
    if not user and not params.get("USER_PHONE_INNER"):
        raise ApiError(400, "", "USER_ID or USER_PHONE_INNER should be set")
    _require_user(portal, user, "USER_ID")
    if not params.get("PHONE_NUMBER"):
        raise ApiError(400, "", "PHONE_NUMBER should not be empty")
    kind = int(params.get("TYPE") or 0)
    if kind not in (1, 2, 3, 4, 5):
        raise ApiError(400, "", "Unknown TYPE")
    external = params.get("EXTERNAL_CALL_ID")
    for call_id, call in portal.calls.items():
        # Registered again within 30 minutes with the same key: the same CALL_ID.
        if (
            call["EXTERNAL_CALL_ID"] == external
            and call["PHONE_NUMBER"] == params.get("PHONE_NUMBER")
            and portal.now() - call["registered_at"] < 1800
        ):
            return {"result": _registered(call_id, call)}
    entity_type = str(params.get("CRM_ENTITY_TYPE") or "").upper() or None
    entity_id = int(params.get("CRM_ENTITY_ID") or 0) or None
    if entity_type and (
        entity_type.lower() not in portal.entities or entity_id not in portal.entities[entity_type.lower()]
    ):
        raise ApiError(400, "", "CRM entity not found")
    call_id = f"externalCall.{secrets.token_hex(16)}.{int(portal.now())}"
    portal.calls[call_id] = {
        "EXTERNAL_CALL_ID": external,
        "PHONE_NUMBER": str(params.get("PHONE_NUMBER")),
        "USER_ID": int(user or portal.user_id),
        "TYPE": kind,
        "CALL_START_DATE": params.get("CALL_START_DATE") or _iso(portal.now()),
        "CRM_ENTITY_TYPE": entity_type,
        "CRM_ENTITY_ID": entity_id,
        "registered_at": portal.now(),
        "finished": None,
    }
    return {"result": _registered(call_id, portal.calls[call_id])}


def _registered(call_id: str, call: dict[str, Any]) -> dict[str, Any]:
    return {
        "CALL_ID": call_id,
        "CRM_CREATED_LEAD": None,
        "CRM_CREATED_ENTITIES": [],
        "CRM_ENTITY_TYPE": call["CRM_ENTITY_TYPE"],
        "CRM_ENTITY_ID": call["CRM_ENTITY_ID"],
    }


def _call_finish(portal: Portal, params: _CaseParams) -> dict[str, Any]:
    call_id = str(params.get("CALL_ID") or "")
    call = portal.calls.get(call_id)
    if call is None or call["finished"] is not None:
        raise ApiError(400, "", "Call is not found or finished already")
    duration = int(params.get("DURATION") or 0)
    code = str(params.get("STATUS_CODE") or ("200" if duration > 0 else "304"))
    activity_id = portal.next_id("activity")
    row = {
        "ID": str(len(portal.statistic) + 1),
        "CALL_ID": call_id,
        "EXTERNAL_CALL_ID": call["EXTERNAL_CALL_ID"],
        "PORTAL_USER_ID": str(call["USER_ID"]),
        "PHONE_NUMBER": call["PHONE_NUMBER"],
        "CALL_TYPE": str(call["TYPE"]),
        "CALL_DURATION": str(duration),
        "CALL_START_DATE": call["CALL_START_DATE"],
        "CALL_RECORD_URL": str(params.get("RECORD_URL") or ""),
        "CALL_FAILED_CODE": code,
        "CRM_ENTITY_TYPE": call["CRM_ENTITY_TYPE"],
        "CRM_ENTITY_ID": str(call["CRM_ENTITY_ID"] or ""),
        "CRM_ACTIVITY_ID": str(activity_id),
    }
    portal.statistic.append(row)
    portal.activities[activity_id] = {
        "ID": str(activity_id),
        "PROVIDER_ID": "VOXIMPLANT_CALL",
        "call": call_id,
    }
    call["finished"] = row
    return {
        "result": {
            "CALL_ID": call_id,
            "EXTERNAL_CALL_ID": call["EXTERNAL_CALL_ID"],
            "PORTAL_USER_ID": call["USER_ID"],
            "PHONE_NUMBER": call["PHONE_NUMBER"],
            "CALL_DURATION": duration,
            "CALL_FAILED_CODE": code,
            "CRM_ACTIVITY_ID": activity_id,
            "CRM_ENTITY_TYPE": call["CRM_ENTITY_TYPE"],
            "CRM_ENTITY_ID": call["CRM_ENTITY_ID"],
            "ID": int(row["ID"]),
        }
    }


def _call_attach(portal: Portal, params: _CaseParams) -> dict[str, Any]:
    call = portal.calls.get(str(params.get("CALL_ID") or ""))
    if call is None or call["finished"] is None:
        raise ApiError(400, "", "Call is not found or not finished")
    if not params.get("RECORD_URL") and not params.get("FILE_CONTENT"):
        raise ApiError(400, "", "RECORD_URL or FILE_CONTENT should be set")
    call["finished"]["CALL_RECORD_URL"] = str(params.get("RECORD_URL") or params.get("FILENAME") or "")
    return {"result": {"FILE_ID": portal.next_id("file")}}


def _statistic(portal: Portal, params: _CaseParams) -> dict[str, Any]:
    rows = [r for r in portal.statistic if _matches(r, params.get("FILTER") or {})]
    chunk, extra = _page(rows, params.get("start"))
    return {"result": chunk, **extra}


METHODS: dict[str, Callable[[Portal, _CaseParams], dict[str, Any]]] = {
    "user.get": _users,
    "crm.settings.mode.get": _mode,
    "crm.category.list": _categories,
    "crm.status.list": _statuses,
    "crm.stagehistory.list": _stagehistory,
    "crm.duplicate.findbycomm": _duplicates,
    "tasks.task.add": _task_add,
    "tasks.task.update": _task_update,
    "tasks.task.complete": _task_complete,
    "tasks.task.get": _task_get,
    "tasks.task.list": _task_list,
    "crm.timeline.comment.add": _comment_add,
    "crm.timeline.comment.list": _comment_list,
    "telephony.externalcall.register": _call_register,
    "telephony.externalcall.finish": _call_finish,
    "telephony.externalcall.attachrecord": _call_attach,
    "voximplant.statistic.get": _statistic,
}
for _entity in ENTITY_TYPE_IDS:
    METHODS[f"crm.{_entity}.add"] = _entity_add(_entity)
    METHODS[f"crm.{_entity}.update"] = _entity_update(_entity)
    METHODS[f"crm.{_entity}.get"] = _entity_get(_entity)
    METHODS[f"crm.{_entity}.list"] = _entity_list(_entity)
    METHODS[f"crm.{_entity}.userfield.add"] = _userfield_add(_entity)
    METHODS[f"crm.{_entity}.userfield.list"] = _userfield_list(_entity)


# ---------------------------------------------------------------- HTTP


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _reply(self, status: int, body: dict[str, Any] | bytes, ctype: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype + ("; charset=utf-8" if ctype == "application/json" else ""))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _params(self) -> dict[str, Any]:
        url = urlsplit(self.path)
        params: dict[str, Any] = parse_query(url.query) if url.query else {}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        ctype = (self.headers.get("Content-Type") or "").lower()
        if raw and "json" in ctype:
            try:
                body = json.loads(raw)
            except ValueError:
                raise ApiError(400, "INVALID_REQUEST", "Invalid JSON") from None
            if isinstance(body, dict):
                params.update(body)
        elif raw:
            params.update(parse_query(raw.decode()))
        return params

    def _handle(self) -> None:
        portal: Portal = self.server.portal
        path = urlsplit(self.path).path
        started = portal.now()
        try:
            params = self._params()
            with portal.lock:
                portal.requests += 1
                if portal.outage_left > 0:
                    portal.outage_left -= 1
                    self._reply(
                        503,
                        b"<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>",
                        "text/html",
                    )
                    return
                if path.rstrip("/") == "/oauth/token":
                    tokens = portal.oauth({k: str(v) for k, v in params.items()})
                    tokens["client_endpoint"] = f"http://{self.headers.get('Host')}/rest/"
                    self._reply(200, tokens)
                    return
                method = self._method(portal, path, params)
                portal.admit()
                if method.lower().removesuffix(".json") == "batch":
                    answer = portal.batch(params)
                    extra: dict[str, Any] = {}
                else:
                    extra = portal.operate(method.lower().removesuffix(".json"))
                    answer = portal.call(method, {k: v for k, v in params.items() if k != "auth"})
                answer["time"] = portal.time_block(started, extra)
                self._reply(200, answer)
        except ApiError as exc:
            self._reply(exc.status, {"error": exc.code, "error_description": exc.description})
        except Exception as exc:  # a bug of the replay: answered as the portal answers its own
            log.exception("Bitrix24 replay: %s failed", path)
            self._reply(
                500, {"error": "INTERNAL_SERVER_ERROR", "error_description": f"{type(exc).__name__}: {exc}"}
            )

    def _method(self, portal: Portal, path: str, params: dict[str, Any]) -> str:
        parts = [p for p in path.split("/") if p]
        if len(parts) == 4 and parts[0] == "rest":
            # Inbound webhook: /rest/<user>/<secret>/<method>
            if parts[1] != str(portal.user_id) or parts[2] != portal.webhook_secret:
                raise ApiError(401, "NO_AUTH_FOUND", "Wrong authorization data")
            return parts[3]
        if len(parts) == 2 and parts[0] == "rest":
            portal.check_token(params.get("auth"))
            return parts[1]
        raise ApiError(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")


# ---------------------------------------------------------------- CrmReplay


class Bitrix24Replay:
    """`with Bitrix24Replay(mode="classic") as crm:` a portal on 127.0.0.1 (see CrmReplay)."""

    backend = "bitrix24"

    def __init__(self, mode: str = "classic", *, oauth: bool = False, limits: Limits | None = None) -> None:
        if mode not in ("classic", "simple"):
            raise ValueError("mode is classic (with leads) or simple (deals only)")
        self.portal = Portal(mode=1 if mode == "classic" else 2, limits=limits or Limits())
        self.oauth = oauth
        self.url = ""
        self._serving: AbstractContextManager[LocalServer] | None = None
        # The portal's administrator, owner of the webhook.
        self.portal.users[1] = _user(1, "Администратор", "admin@portal.example", True)

    def __enter__(self) -> Bitrix24Replay:
        self._serving = local_server(_Handler, portal=self.portal)
        self.url = self._serving.__enter__().url
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._serving is not None
        self._serving.__exit__(*exc)

    # ------------------------------------------------------------ pointing the hub at it

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/rest/{self.portal.user_id}/{self.portal.webhook_secret}/"

    def hub_environment(self) -> dict[str, str]:
        # The client's bucket is the portal's.
        env = {
            "HUB_CRM__BACKEND": "bitrix24",
            "HUB_CRM__BITRIX24__REQUESTS_PER_SECOND": str(self.portal.limits.drain_per_s),
            "HUB_CRM__BITRIX24__BURST": str(int(self.portal.limits.burst)),
        }
        if self.oauth:
            env |= {
                "HUB_CRM__BITRIX24__PORTAL_URL": self.url,
                "HUB_CRM__BITRIX24__CLIENT_ID": self.portal.client_id,
                "HUB_CRM__BITRIX24__CLIENT_SECRET": self.portal.client_secret,
                "HUB_CRM__BITRIX24__OAUTH_URL": f"{self.url}/oauth/token/",
            }
        else:
            env["HUB_CRM__BITRIX24__WEBHOOK_URL"] = self.webhook_url
        return env

    def authorization_code(self) -> str:
        """What the portal hands the application after a person allows it (`hub crm connect`)."""
        with self.portal.lock:
            return self.portal.issue_code()

    # ------------------------------------------------------------ seeding

    def seed_users(self, users: list[dict[str, Any]]) -> list[str]:
        ids = []
        with self.portal.lock:
            for item in users:
                uid = max(self.portal.users) + 1
                self.portal.users[uid] = _user(
                    uid, item["name"], item["email"], bool(item.get("active", True))
                )
                ids.append(str(uid))
        return ids

    def seed_pipeline(self, name: str, stages: list[str]) -> None:
        with self.portal.lock:
            default = self.portal.categories[0]
            if default["name"] in ("Общая", name) and not self.portal.entities["deal"]:
                default["name"] = name
                self.portal._stage_defaults(0, stages)
                return
            category = max(int(c["id"]) for c in self.portal.categories) + 1
            self.portal.categories.append(
                {"id": category, "name": name, "sort": 100 + category, "isDefault": "N"}
            )
            self.portal._stage_defaults(category, stages)

    def seed_contacts(self, contacts: list[dict[str, Any]]) -> list[str]:
        ids = []
        with self.portal.lock:
            for item in contacts:
                company_id = None
                if item.get("company"):
                    company_id = self._company(item["company"], item.get("responsible"))
                first, _, last = str(item.get("name") or "").partition(" ")
                fields: dict[str, Any] = {
                    "NAME": first,
                    "LAST_NAME": last,
                    "PHONE": [{"VALUE": p, "VALUE_TYPE": "WORK"} for p in item.get("phones", [])],
                    "EMAIL": [{"VALUE": e, "VALUE_TYPE": "WORK"} for e in item.get("emails", [])],
                    "COMPANY_ID": company_id,
                }
                if item.get("responsible"):
                    fields["ASSIGNED_BY_ID"] = self.portal.user_by_email(item["responsible"])
                if item.get("hub_ref"):
                    # As after an earlier sync: the card carries the hub's reference.
                    fields |= {"ORIGINATOR_ID": ORIGINATOR, "ORIGIN_ID": item["hub_ref"]}
                ids.append(str(self.portal.call("crm.contact.add", {"fields": fields})["result"]))
        return ids

    def _company(self, title: str, responsible: str | None) -> int:
        for row in self.portal.entities["company"].values():
            if row.get("TITLE") == title:
                return int(row["ID"])
        fields: dict[str, Any] = {"TITLE": title}
        if responsible:
            fields["ASSIGNED_BY_ID"] = self.portal.user_by_email(responsible)
        return int(self.portal.call("crm.company.add", {"fields": fields})["result"])

    def _category(self, pipeline: str | None) -> int:
        for category in self.portal.categories:
            if pipeline in (None, "", category["name"]):
                return int(category["id"])
        raise KeyError(f"no pipeline {pipeline!r}")

    def _stage_id(self, category: int, stage: str | None) -> str:
        stages = self.portal.stages_of(category)
        if not stage:
            return str(stages[0]["STATUS_ID"])
        for row in stages:
            if stage in (row["NAME"], row["STATUS_ID"]):
                return str(row["STATUS_ID"])
        semantics = {"won": "S", "lost": "F"}.get(stage.lower())
        for row in stages:
            if semantics and row.get("SEMANTICS") == semantics:
                return str(row["STATUS_ID"])
        raise KeyError(f"no stage {stage!r} in pipeline {category}")

    def seed_deals(self, deals: list[dict[str, Any]]) -> list[str]:
        ids = []
        with self.portal.lock:
            for item in deals:
                category = self._category(item.get("pipeline"))
                fields: dict[str, Any] = {
                    "TITLE": item["title"],
                    "CATEGORY_ID": category,
                    "STAGE_ID": self._stage_id(category, item.get("stage")),
                    "OPPORTUNITY": item.get("amount"),
                    "CURRENCY_ID": "RUB",
                    "CONTACT_ID": item.get("contact"),
                }
                if item.get("responsible"):
                    fields["ASSIGNED_BY_ID"] = self.portal.user_by_email(item["responsible"])
                if item.get("hub_ref"):
                    fields |= {"ORIGINATOR_ID": ORIGINATOR, "ORIGIN_ID": item["hub_ref"]}
                deal_id = self.portal.call("crm.deal.add", {"fields": fields})["result"]
                if item.get("created_at"):
                    created = item["created_at"]
                    stamp = _iso(created.timestamp() if hasattr(created, "timestamp") else float(created))
                    row = self.portal.entities["deal"][int(deal_id)]
                    row["DATE_CREATE"] = stamp
                    for entry in self.portal.history:
                        if entry["OWNER_ID"] == int(deal_id):
                            entry["CREATED_TIME"] = stamp
                ids.append(str(deal_id))
        return ids

    # ------------------------------------------------------------ a person in the CRM

    def _kind(self, entity: str) -> str:
        """lead/leads, deal/deals...: the portal's entity; a "lead" is a deal in simple mode."""
        kind = {
            "leads": "lead",
            "deals": "deal",
            "contacts": "contact",
            "companies": "company",
            "tasks": "task",
        }.get(entity, entity)
        return "deal" if kind == "lead" and self.portal.mode == 2 else kind

    def reassign(self, entity: str, crm_id: str, user_email: str) -> None:
        with self.portal.lock:
            uid = self.portal.user_by_email(user_email)
            entity = self._kind(entity)
            if entity == "task":
                self.portal.call("tasks.task.update", {"taskId": crm_id, "fields": {"RESPONSIBLE_ID": uid}})
                return
            self.portal.call(f"crm.{entity}.update", {"id": crm_id, "fields": {"ASSIGNED_BY_ID": uid}})

    def move_stage(self, deal_id: str, stage: str) -> None:
        with self.portal.lock:
            row = self.portal.entities["deal"][int(deal_id)]
            stage_id = self._stage_id(int(row["CATEGORY_ID"]), stage)
            self.portal.call("crm.deal.update", {"id": deal_id, "fields": {"STAGE_ID": stage_id}})

    def complete_task(self, task_id: str) -> None:
        with self.portal.lock:
            self.portal.call("tasks.task.complete", {"taskId": task_id})

    def set_mode(self, mode: str) -> None:
        with self.portal.lock:
            self.portal.mode = 1 if mode == "classic" else 2

    # ------------------------------------------------------------ faults and figures

    def outage(self, requests: int) -> None:
        with self.portal.lock:
            self.portal.outage_left = requests

    def requests_seen(self) -> int:
        with self.portal.lock:
            return self.portal.requests

    def advance(self, seconds: float) -> None:
        """Move the portal's clock forward (tokens expire, buckets drain)."""
        with self.portal.lock:
            self.portal.offset_s += seconds

    # ------------------------------------------------------------ reading back

    def _entity_name(self, entity: str | None, entity_id: Any) -> str | None:
        if not entity:
            return None
        row = self.portal.entities.get(entity.lower(), {}).get(int(entity_id or 0))
        return _name(entity.lower(), row) if row else None

    def _row(self, entity: str, row: dict[str, Any]) -> dict[str, Any]:
        p = self.portal
        fields = {k: v for k, v in row.items() if k.startswith("UF_CRM_") and v not in (None, "")}
        base = {
            "responsible": p.user_email(row.get("ASSIGNED_BY_ID")),
            "fields": dict(sorted(fields.items())),
        }
        if entity in ("lead", "deal"):
            category = int(row.get("CATEGORY_ID") or 0)
            stage = next((s for s in p.stages_of(category) if s["STATUS_ID"] == row.get("STAGE_ID")), None)
            pipeline = next((c["name"] for c in p.categories if int(c["id"]) == category), None)
            contact = self._entity_name("contact", row.get("CONTACT_ID"))
            return {
                **base,
                "title": row.get("TITLE"),
                "contact": contact or (_person(row) if entity == "lead" else None),
                "pipeline": pipeline if entity == "deal" else None,
                "stage": stage["NAME"] if stage else row.get("STATUS_ID"),
                "tags": [],
                # Only what the hub created as a lead (a seeded card's reference is not one).
                "hub_ref": _lead_ref(row),
            }
        if entity == "contact":
            return {
                **base,
                "name": _name("contact", row),
                "phones": sorted(m["VALUE"] for m in row.get("PHONE") or []),
                "emails": sorted(m["VALUE"] for m in row.get("EMAIL") or []),
                "company": self._entity_name("company", row.get("COMPANY_ID")),
                "tags": [],
            }
        return {**base, "name": row.get("TITLE")}

    def snapshot(self) -> CrmSnapshot:
        p = self.portal
        with p.lock:
            leads = [self._row("lead", r) for r in p.entities["lead"].values()]
            deals = [self._row("deal", r) for r in p.entities["deal"].values()]
            if p.mode == 2:
                leads = [d for d in deals if d["hub_ref"]]
            else:
                leads = [lead for lead in leads if lead["hub_ref"]]
            tasks = []
            for task in p.tasks.values():
                binding = next(iter(task.get("ufCrmTask") or []), "")
                prefix, _, entity_id = binding.partition("_")
                entity = {"L": "lead", "D": "deal", "C": "contact", "CO": "company"}.get(prefix)
                tasks.append(
                    {
                        "text": task.get("title"),
                        "responsible": p.user_email(task.get("responsibleId")),
                        "entity": entity,
                        "entity_name": self._entity_name(entity, entity_id),
                        "done": task.get("status") == "5",
                        "kind": next((t for t in task.get("tags") or [] if t != "hub"), None),
                    }
                )
            notes = [
                {
                    "entity": c["ENTITY_TYPE"],
                    "entity_name": self._entity_name(c["ENTITY_TYPE"], c["ENTITY_ID"]),
                    "text": _HUB_MARKER.sub("", c["COMMENT"]),
                }
                for c in p.comments.values()
            ]
            calls = [
                {
                    "entity": (s["CRM_ENTITY_TYPE"] or "").lower() or None,
                    "entity_name": self._entity_name(s["CRM_ENTITY_TYPE"], s["CRM_ENTITY_ID"]),
                    "phone": s["PHONE_NUMBER"],
                    "direction": "outbound" if s["CALL_TYPE"] == "1" else "inbound",
                    "duration": int(s["CALL_DURATION"]),
                    "recording_url": s["CALL_RECORD_URL"] or None,
                    "uniq": _strip_ref(s["EXTERNAL_CALL_ID"]),
                }
                for s in p.statistic
            ]
            return CrmSnapshot(
                leads=leads,
                deals=deals,
                contacts=[self._row("contact", r) for r in p.entities["contact"].values()],
                companies=[self._row("company", r) for r in p.entities["company"].values()],
                tasks=tasks,
                notes=notes,
                calls=calls,
            ).sorted()

    def find(self, entity: str, **match: Any) -> list[str]:
        """CRM ids of the entities whose snapshot row has these values; `entity` is a snapshot
        collection ("leads", "deals", "contacts"...) or its singular."""
        p = self.portal
        leads = entity in ("lead", "leads")
        kind = self._kind(entity)
        with p.lock:
            if kind == "task":
                rows: Iterator[tuple[Any, dict[str, Any]]] = (
                    (tid, {"text": t.get("title"), "responsible": p.user_email(t.get("responsibleId"))})
                    for tid, t in p.tasks.items()
                )
            else:
                rows = (
                    (eid, self._row(kind, r))
                    for eid, r in p.entities[kind].items()
                    if not (leads and kind == "deal" and not _lead_ref(r))
                )
            return [str(eid) for eid, row in rows if all(row.get(k) == v for k, v in match.items())]


def _user(uid: int, name: str, email: str, active: bool) -> dict[str, Any]:
    first, _, last = name.partition(" ")
    return {
        "ID": str(uid),
        "ACTIVE": active,
        "NAME": first,
        "LAST_NAME": last,
        "EMAIL": email,
        "WORK_PHONE": "",
        "PERSONAL_MOBILE": "",
        "UF_PHONE_INNER": str(100 + uid),
        "USER_TYPE": "employee",
    }


def _person(row: dict[str, Any]) -> str | None:
    name = " ".join(str(row.get(k) or "") for k in ("NAME", "LAST_NAME")).strip()
    return name or None


def _name(entity: str, row: dict[str, Any]) -> str | None:
    if entity == "contact":
        return _person(row)
    return row.get("TITLE")
