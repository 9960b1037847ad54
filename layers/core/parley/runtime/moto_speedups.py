"""Two of moto's DynamoDB costs that grow with the table, removed (the local server's emulation only).

Query: moto finds a partition's items by sorting every item of the table and comparing each
one's hash key (~70 ms per query on a 2,000-item table); here a base-table query reads its
partition's items directly, and an index query skips the presort (moto sorts by the index's
keys afterwards anyway).

TransactWriteItems: moto backs up every table a transaction names with `copy.deepcopy(table)` before applying it,
and restores that copy if the transaction is cancelled: each send costs time proportional to
the whole messages table (bench/local_load.py measures it), and everything else waits behind
the emulation's lock meanwhile. Here the backup is of the items the transaction names
instead; if moto cancels the transaction, those items are put back as they were and the
stream records the transaction added are dropped, which is what restoring the copies did.
Both are correct only under the emulation's lock (one request at a time), which the local
server holds; tests/local/test_emulation.py checks them against moto's own results.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

_installed: dict[str, Any] = {}
_lock = threading.Lock()


def _deepcopy_except_tables(table_type: type) -> Callable[..., Any]:
    def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
        # The transaction's "backup" of a table is the table itself; the items are backed up below.
        return value if isinstance(value, table_type) else copy.deepcopy(value, memo)

    return deepcopy


def _key_of(table: Any, op: dict[str, Any]) -> dict[str, Any] | None:
    if "Key" in op:
        return dict(op["Key"])
    item = op.get("Item") or {}
    if table.hash_key_attr not in item:
        return None
    key = {table.hash_key_attr: item[table.hash_key_attr]}
    if table.range_key_attr is not None:
        if table.range_key_attr not in item:
            return None
        key[table.range_key_attr] = item[table.range_key_attr]
    return key


def install() -> None:
    """Patch moto's DynamoDB backend (idempotent); `uninstall()` puts moto back."""
    from moto.dynamodb import models  # noqa: PLC0415 - a development dependency
    from moto.dynamodb.models.table import Table  # noqa: PLC0415

    with _lock:
        if _installed:
            return
        original = models.DynamoDBBackend.transact_write_items

        def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
            backup: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
            stream_lengths: dict[str, int] = {}
            for entry in transact_items[:100]:
                for op in entry.values():
                    name = str(op.get("TableName") or "") if isinstance(op, dict) else ""
                    table = self.tables.get(name)
                    key = _key_of(table, op) if table is not None else None
                    if table is None or key is None:
                        continue
                    # A malformed key raises moto's own ValidationException here, as the transaction would.
                    current = self.get_item(name, key)
                    backup.append((name, key, copy.deepcopy(current.to_json()["Attributes"]) if current else None))
                    if table.stream_shard is not None:
                        stream_lengths.setdefault(name, len(table.stream_shard.items))
            try:
                original(self, transact_items)
            except Exception:
                for name, key, attributes in reversed(backup):
                    if attributes is None:
                        if self.get_item(name, key) is not None:
                            self.delete_item(name, key)
                    else:
                        self.put_item(name, attributes)
                for name, length in stream_lengths.items():
                    del self.tables[name].stream_shard.items[length:]
                raise

        original_query = Table.query

        def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
            index_name = kwargs.get("index_name") if len(args) < 7 else args[6]
            if index_name:
                everything = [
                    i for part in self.items.values() for i in (part.values() if self.range_key_attr else [part])
                ]
                self.all_items = lambda: everything
            elif hash_key is not None:
                part = self.items.get(hash_key)
                found = [] if part is None else (list(part.values()) if self.range_key_attr else [part])
                self.all_items = lambda: found
            try:
                return original_query(self, hash_key, *args, **kwargs)
            finally:
                self.__dict__.pop("all_items", None)

        moto_copy = getattr(models, "copy")  # noqa: B009 - moto imports it but does not export it
        _installed.update(copy_module=moto_copy, original=original, query=original_query)
        Table.query = query  # type: ignore[method-assign]
        setattr(models, "copy", SimpleNamespace(deepcopy=_deepcopy_except_tables(Table), copy=copy.copy))  # noqa: B010
        models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def uninstall() -> None:
    from moto.dynamodb import models  # noqa: PLC0415
    from moto.dynamodb.models.table import Table  # noqa: PLC0415

    with _lock:
        if not _installed:
            return
        setattr(models, "copy", _installed["copy_module"])  # noqa: B010
        models.DynamoDBBackend.transact_write_items = _installed["original"]  # type: ignore[method-assign]
        Table.query = _installed["query"]  # type: ignore[method-assign]
        _installed.clear()
