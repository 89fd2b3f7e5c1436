"""The live event hub (``caxton.engine.stream``) in process: frames published from other threads wake a
subscription on its loop, the agent filter, a bounded queue that overflows, close; and the client's parser of
the SSE text format (``caxton.client.events.parse_frames``)."""

from __future__ import annotations

import asyncio
import threading

from caxton import metrics
from caxton.client.events import parse_frames
from caxton.engine.stream import END, IDLE, OVERFLOW, EventHub, Frame
from caxton.spec import api


def sample(name: str) -> float:
    return metrics.REGISTRY.get_sample_value(name) or 0.0


def frame(agent: str | None, n: int) -> Frame:
    return Frame("apply", agent, {"n": n})


def test_frames_published_from_other_threads_arrive_in_order_filtered_by_agent() -> None:
    async def scenario() -> list[object]:
        hub = EventHub()
        mine = hub.subscribe("a", size=100)
        every = hub.subscribe(None, size=100)
        assert hub.listening
        publisher = threading.Thread(target=lambda: [hub.publish(frame("ab"[n % 2], n)) for n in range(6)])
        publisher.start()
        got = [await mine.next(5.0) for _ in range(3)]
        seen = [await every.next(5.0) for _ in range(6)]
        publisher.join()
        assert await mine.next(0.01) == IDLE
        hub.unsubscribe(mine)
        hub.unsubscribe(every)
        assert not hub.listening
        return [[f.data["n"] for f in got if isinstance(f, Frame)], [f.data["n"] for f in seen if isinstance(f, Frame)]]

    assert asyncio.run(scenario()) == [[0, 2, 4], [0, 1, 2, 3, 4, 5]]


def test_a_subscription_past_its_queue_overflows_and_close_ends_the_others() -> None:
    dropped = sample("caxton_event_streams_dropped_total")
    opened = sample("caxton_event_streams_open")

    async def scenario() -> tuple[object, object, object, object]:
        hub = EventHub()
        slow = hub.subscribe(None, size=2)
        other = hub.subscribe(None, size=10)
        for n in range(3):
            hub.publish(frame(None, n))
        await asyncio.sleep(0.05)  # the loop runs the offers
        assert slow.dropped.is_set() and sample("caxton_event_streams_open") == opened + 1
        hub.close()
        first = await other.next(1.0)
        for _ in range(2):
            await other.next(1.0)
        ended = await other.next(1.0)
        hub.unsubscribe(other)  # what the stream route does once its stream ended
        return await slow.next(1.0), first, ended, hub.closed

    slow, first, other, closed = asyncio.run(scenario())
    assert slow == OVERFLOW and isinstance(first, Frame) and other == END and closed
    assert sample("caxton_event_streams_dropped_total") == dropped + 1
    assert sample("caxton_event_streams_open") == opened  # the stream route gives an ended one back



def test_the_client_parses_the_sse_text_format_into_wire_models() -> None:
    text = [
        "retry: 2000", ": caxton event stream", "",
        "id: 7", "event: event",
        'data: {"id":7,"at":"t","serial":3,"agent":"a","what":"transition","from_state":"Running",'
        '"to_state":"Suspended","revision":1,"message":"m","actor":null,"plan_id":null,"git_commit":null}', "",
        ": heartbeat", "",
        "event: something-new", "data: [1,", "data: 2]", "",
        "event: end", 'data: {"reason":"timeout","last_event_id":7}', "",
    ]
    frames = list(parse_frames(iter(text)))
    assert [(f.kind, f.id) for f in frames] == [("event", 7), ("something-new", None), ("end", None)]
    assert isinstance(frames[0].data, api.Event) and frames[0].data.to_state == "Suspended"
    assert frames[1].data == [1, 2]  # a kind this client does not know keeps its JSON
    assert isinstance(frames[2].data, api.StreamEnd) and frames[2].ends and frames[2].data.last_event_id == 7
