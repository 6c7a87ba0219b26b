"""One visitor of a Streamlit app spoken to in Streamlit's own protocol, without a browser: the ``BackMsg`` /
``ForwardMsg`` protobufs over the websocket ``/_stcore/stream``, as the frontend sends and reads them.

A run is asked for with a ``rerun_script`` BackMsg (the page's query string, the page, the widgets' values) and is
over at the ``script_finished`` ForwardMsg; the elements it drew arrive as deltas in between. A widget is found by
its label in the latest run's deltas and given a new value by the id it has there (an id can change from one run
to the next), as the frontend does when a person picks something."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.asyncio.client import ClientConnection, connect

EARLY = ForwardMsg.ScriptFinishedStatus.Value("FINISHED_EARLY_FOR_RERUN")  # the script asked for another run


@dataclass
class Run:
    """What one run of the script sent: the text of its elements, its alerts (errors, warnings, notes), its
    widgets (label -> id), its exceptions; timed from the send to its end."""

    texts: list[str] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    widgets: dict[str, str] = field(default_factory=dict)
    exceptions: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def has(self, text: str) -> bool:
        return any(text in t for t in self.texts)

    def why_not(self) -> str:
        """What the run showed instead of results: its last alert or exception, else its last text."""
        said = self.exceptions or self.alerts or self.texts or ["nothing"]
        return said[-1][:160]


def element_texts(el) -> list[str]:
    """The text an element shows: Markdown bodies (text, captions, alerts), an image's captions, a label."""
    kind = el.WhichOneof("type")
    part = getattr(el, kind) if kind else None
    out = []
    if kind == "imgs":
        out += [i.caption for i in part.imgs if i.caption]
    elif kind == "alert" or kind == "markdown" or kind == "heading":
        out.append(part.body)
    elif part is not None and hasattr(part, "label"):
        out.append(part.label)
    return out


class Session:
    """A websocket session with a Streamlit server: ``await Session.open(url)``, then :meth:`run` per rerun."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.query_string = ""
        self.widget_ids: dict[str, str] = {}  # label -> id, as the latest run drew them
        self.widget_values: dict[str, str] = {}  # label -> value of the widgets this visitor set, sent every rerun

    @classmethod
    async def open(cls, url: str, timeout_s: float = 60.0) -> Session:
        """Connect to ``url`` (``ws://host:port``); the session starts with the first :meth:`run`."""
        ws = await connect(f"{url}/_stcore/stream", subprotocols=["streamlit"], max_size=None,
                           open_timeout=timeout_s, ping_interval=None)
        return cls(ws)

    async def close(self) -> None:
        await self.ws.close()

    async def run(self, query_string: str | None = None, widget: tuple[str, str] | None = None) -> Run:
        """Ask for a run (``query_string``: as the address bar has it; ``widget``: (label, new string value) set as
        a person would) and read the ForwardMsgs until the run is over; its elements, timed from the send."""
        if query_string is not None:
            self.query_string = query_string
        msg = BackMsg()
        cs = msg.rerun_script
        cs.query_string = self.query_string  # no page hash: the app's first page, as its address opens it (the
        # navigation messages name several hashes, one of them the legacy pages folder's, in an order a rerun
        # does not fix; a page run under another hash gives its widgets other ids and drops the values sent)
        if widget:
            if widget[0] not in self.widget_ids:
                raise KeyError(f"the page shows no widget labelled {widget[0]!r}")
            self.widget_values[widget[0]] = widget[1]
        for label, value in self.widget_values.items():
            if label in self.widget_ids:
                w = cs.widget_states.widgets.add()
                w.id, w.string_value = self.widget_ids[label], value
        t0 = time.perf_counter()
        await self.ws.send(msg.SerializeToString())
        run = Run()
        while True:
            fm = ForwardMsg()
            fm.ParseFromString(await self.ws.recv())
            kind = fm.WhichOneof("type")
            if kind == "delta" and fm.delta.WhichOneof("type") == "new_element":
                el = fm.delta.new_element
                run.texts += element_texts(el)
                part = getattr(el, el.WhichOneof("type") or "", None)
                if el.WhichOneof("type") == "alert":
                    run.alerts.append(part.body)
                elif el.WhichOneof("type") == "exception":
                    run.exceptions.append(f"{part.type}: {part.message}"[:200])
                elif getattr(part, "id", "") and getattr(part, "label", ""):
                    run.widgets[part.label] = part.id
            elif kind == "page_info_changed":
                self.query_string = fm.page_info_changed.query_string
            elif kind == "script_finished" and fm.script_finished != EARLY:
                run.seconds = time.perf_counter() - t0
                self.widget_ids.update(run.widgets)
                return run
