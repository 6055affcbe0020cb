"""A small fake OpenClaw gateway for the connector's host test (loopback only).

It speaks the frames recorded from a real `openclaw gateway run` (src/gateway/fixtures/):
the recorded connect.challenge and hello-ok (or the recorded token refusal for a wrong
token), then for each chat.send: `started` (runId = idempotencyKey), a `delta` and a `final`
whose text is `fake agent: <the untrusted text of the prompt>`. A resend of a running key
answers `in_flight`, of a finished one `ok`, like the real gateway.

  python3 fake-gateway.py --token T [--restart-mid-turn] [--log FILE]
prints FAKE_GATEWAY_URL=ws://127.0.0.1:PORT then `ready`. With --restart-mid-turn it closes
every socket (1012) right after the first `started`, then finishes that run for whoever resends.
With --hold TEXT the first run whose prompt contains TEXT never finishes (the agent is still
thinking when the connector is killed); a new run for the same prompt is answered.
"""
import argparse, asyncio, json, pathlib, sys
import websockets

fixtures = pathlib.Path(__file__).resolve().parents[2] / "src/gateway/fixtures"
chat = fixtures.joinpath("chat.jsonl").read_text().splitlines()
CHALLENGE, HELLO = chat[0], chat[1]
REFUSAL = fixtures.joinpath("bad_token.jsonl").read_text().splitlines()[1]

ap = argparse.ArgumentParser()
ap.add_argument("--token", required=True)
ap.add_argument("--restart-mid-turn", action="store_true")
ap.add_argument("--log", default="/dev/null")
ap.add_argument("--hold", default=None, help="never finish the first run whose prompt contains this (an agent still thinking)")
args = ap.parse_args()
runs = {}  # key -> "running" | "done"
restart_pending = args.restart_mid_turn
held = []  # the run kept "thinking" (--hold)
log = open(args.log, "a", buffering=1)


def reply_for(prompt):
    text = prompt.split("<<<MOLTCHATS_UNTRUSTED_TEXT\n")[-1].split("\nMOLTCHATS_UNTRUSTED_TEXT>>>")[0]
    return "fake agent: " + text


async def finish(ws, key, text):
    runs[key] = "done"
    half = len(text) // 2
    for payload in ({"state": "delta", "deltaText": text[:half]}, {"state": "delta", "deltaText": text[half:]}, {"state": "final"}):
        payload.update(runId=key, sessionKey="agent:main:main")
        await ws.send(json.dumps({"type": "event", "event": "chat", "payload": payload}))


async def handler(ws):
    global restart_pending
    await ws.send(CHALLENGE)
    async for raw in ws:
        frame = json.loads(raw)
        rid = frame["id"]
        if frame["method"] == "connect":
            ok = frame["params"]["auth"]["token"] == args.token
            log.write(json.dumps({"connect": sorted(frame["params"]), "ok": ok}) + "\n")
            template = HELLO if ok else REFUSAL
            await ws.send(template.replace('"id":"c1"', json.dumps({"id": rid})[1:-1]))
            if not ok:
                await ws.close(1008, "unauthorized: gateway token mismatch")
                return
        elif frame["method"] == "chat.send":
            p = frame["params"]
            key = p["idempotencyKey"]
            log.write(json.dumps({"chat.send": key, "sessionKey": p["sessionKey"], "chars": len(p["message"])}) + "\n")
            status = {"running": "in_flight", "done": "ok"}.get(runs.get(key), "started")
            await ws.send(json.dumps({"type": "res", "id": rid, "ok": True, "payload": {"runId": key, "status": status}}))
            if status == "ok":
                continue
            if args.hold and args.hold in p["message"] and not held:
                held.append(key)
                runs[key] = "running"
                continue
            if restart_pending:
                restart_pending = False
                runs[key] = "running"
                await ws.close(1012, "service restart")
                return
            await finish(ws, key, reply_for(p["message"]))


async def ticks(server):
    while True:
        await asyncio.sleep(5)
        websockets.broadcast(server.connections, json.dumps({"type": "event", "event": "tick", "payload": {"ts": 0}}))


async def main():
    async with websockets.serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"FAKE_GATEWAY_URL=ws://127.0.0.1:{port}")
        print("ready", flush=True)
        await ticks(server)

asyncio.run(main())
