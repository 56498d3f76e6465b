import trio
from tests.gateway.test_slow_consumer import stalled_client
async def test_dbg(engine):
    engine.config.slow_client_grace_s = 1.0
    async with stalled_client(engine) as slow:
        await slow.hello()
        for i in range(30):
            with trio.move_on_after(2) as cs:
                await slow.send({"type": "subscribe", "topic": "x" * 60_000})
            if cs.cancelled_caught: print("send blocked at", i); break
        conn = slow.conn
        for _ in range(30):
            await trio.sleep(0.1)
            print(conn and (conn.sending, len(conn.outbox), conn.close_code, len(conn.outbox._control)), engine.metrics.frames_in, engine.metrics.errors)
