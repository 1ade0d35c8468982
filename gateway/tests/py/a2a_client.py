"""An a2a-sdk client driven by gateway/tests/a2a.rs through Switchboard's A2A route.

Prints one JSON object per line on stdout (`{"step": ..., ...}`) for the Rust test to check,
and reads `release` from stdin when a held stream must continue (the test releases the agent
only after it has seen the stream's first event here, which proves the gateway does not buffer).

Usage: python a2a_client.py URL --version 1.0|0.3 --hold-key KEY [--push-ok URL --push-bad URL]
       python a2a_client.py URL --version 1.0 --only-get TASK_ID
       python a2a_client.py URL --version 1.0 --only-send TEXT   (also --only-stream TEXT,
       --only-cancel TASK_ID, --only-start TEXT which returns at once,
       --only-list PAGE_SIZE which pages through every task)
"""

import argparse
import asyncio
import json
import sys

import httpx

from google.protobuf.json_format import MessageToDict

from a2a.client import ClientConfig, ClientFactory
from a2a.client.card_resolver import A2ACardResolver
from a2a.helpers.proto_helpers import new_text_message
from a2a.types.a2a_pb2 import (
    AgentCard,
    CancelTaskRequest,
    GetExtendedAgentCardRequest,
    GetTaskRequest,
    ListTasksRequest,
    Role,
    SendMessageRequest,
    SubscribeToTaskRequest,
    TaskPushNotificationConfig,
    TaskState,
)


def emit(step: str, **fields) -> None:
    print(json.dumps({'step': step, **fields}), flush=True)


def state_name(state: int) -> str:
    return TaskState.Name(state)


def summarize(ev) -> dict:
    """The kind, task id, state and texts of one StreamResponse."""
    d = MessageToDict(ev)
    kind = next(iter(d), None)
    body = d.get(kind, {}) if kind else {}
    texts = []
    for part in body.get('artifact', {}).get('parts', []):
        if 'text' in part:
            texts.append(part['text'])
    for art in body.get('artifacts', []):
        for part in art.get('parts', []):
            if 'text' in part:
                texts.append(part['text'])
    msg = body.get('status', {}).get('message', {})
    for part in msg.get('parts', []):
        if 'text' in part:
            texts.append(part['text'])
    return {
        'kind': kind,
        'task_id': body.get('taskId') or (body.get('id') if kind == 'task' else None),
        'state': body.get('status', {}).get('state'),
        'texts': texts,
    }


def only_version(card: AgentCard, version: str) -> AgentCard:
    """A copy of the card offering only the JSON-RPC interface of `version`, so the SDK picks
    the 0.3 (compat) or 1.0 transport as the test asks."""
    out = AgentCard()
    out.CopyFrom(card)
    del out.supported_interfaces[:]
    for i in card.supported_interfaces:
        if i.protocol_binding == 'JSONRPC' and i.protocol_version.startswith(version):
            out.supported_interfaces.append(i)
    if not out.supported_interfaces:
        raise SystemExit(f'card has no JSONRPC {version} interface: {card.supported_interfaces}')
    return out


def message(text: str):
    return SendMessageRequest(message=new_text_message(text, role=Role.ROLE_USER))


async def readline() -> str:
    return (await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)).strip()


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument('url')
    p.add_argument('--version', default='1.0')
    p.add_argument('--hold-key')
    p.add_argument('--push-ok')
    p.add_argument('--push-bad')
    p.add_argument('--only-get')
    p.add_argument('--only-send')
    p.add_argument('--only-stream')
    p.add_argument('--only-cancel')
    p.add_argument('--only-start')
    p.add_argument('--only-list')
    args = p.parse_args()

    async with httpx.AsyncClient(timeout=30) as http:
        raw = (await http.get(args.url.rstrip('/') + '/.well-known/agent-card.json')).json()
        card = await A2ACardResolver(http, args.url).get_agent_card()
    card = only_version(card, args.version)
    emit(
        'card',
        interfaces=[
            {'url': i.url, 'binding': i.protocol_binding, 'version': i.protocol_version}
            for i in card.supported_interfaces
        ],
        raw_interfaces=raw.get('supportedInterfaces'),
        raw_url=raw.get('url'),
        security=raw.get('securitySchemes'),
        signatures=raw.get('signatures'),
    )

    plain = ClientFactory(ClientConfig(streaming=False)).create(card)

    if not (args.only_get or args.only_send or args.only_stream or args.only_cancel or args.only_start or args.only_list):
        # The extended card comes over JSON-RPC (GetExtendedAgentCard on 1.0,
        # agent/getAuthenticatedExtendedCard on 0.3) and must be rewritten like the public one.
        ext = await ClientFactory(ClientConfig(streaming=False)).create(card).get_extended_agent_card(
            GetExtendedAgentCardRequest()
        )
        emit(
            'extended_card',
            urls=[i.url for i in ext.supported_interfaces],
            bindings=[i.protocol_binding for i in ext.supported_interfaces],
            skills=[s.id for s in ext.skills],
            security=list(ext.security_schemes.keys()),
            signatures=len(ext.signatures),
        )

        # A message that registers a webhook outside the allow list is refused before it
        # reaches the agent.
        if args.push_bad:
            bad = ClientFactory(
                ClientConfig(
                    streaming=False,
                    push_notification_config=TaskPushNotificationConfig(url=args.push_bad),
                )
            ).create(card)
            try:
                async for _ in bad.send_message(message('hello push')):
                    pass
                emit('send_push_bad', refused=False)
            except Exception as e:  # noqa: BLE001
                emit('send_push_bad', refused=True, error=str(e))
    polling = ClientFactory(ClientConfig(streaming=False, polling=True)).create(card)
    streaming = ClientFactory(ClientConfig(streaming=True)).create(card)

    if args.only_get:
        task = await plain.get_task(GetTaskRequest(id=args.only_get))
        emit('get', task_id=task.id, state=state_name(task.status.state),
             texts=summarize_task(task))
        return
    if args.only_send:
        async for ev in plain.send_message(message(args.only_send)):
            emit('send', **summarize(ev))
        return
    if args.only_stream:
        events = [summarize(ev) async for ev in streaming.send_message(message(args.only_stream))]
        emit('stream', events=events)
        return
    if args.only_start:
        events = [summarize(ev) async for ev in polling.send_message(message(args.only_start))]
        emit('start', **events[-1])
        return
    if args.only_list:
        ids, pages, token = [], 0, ''
        while True:
            page = await plain.list_tasks(
                ListTasksRequest(page_size=int(args.only_list), page_token=token)
            )
            pages += 1
            assert len(page.tasks) <= int(args.only_list), len(page.tasks)
            ids.extend(t.id for t in page.tasks)
            token = page.next_page_token
            if not token:
                break
        emit('list', task_ids=ids, pages=pages)
        return
    if args.only_cancel:
        task = await plain.cancel_task(CancelTaskRequest(id=args.only_cancel))
        emit('cancel', task_id=task.id, state=state_name(task.status.state))
        return

    # send (blocking until the task completes) and get
    events = [summarize(ev) async for ev in plain.send_message(message(f'hello {args.version}'))]
    emit('send', events=events)
    task_id = events[-1]['task_id']
    task = await plain.get_task(GetTaskRequest(id=task_id))
    emit('get', task_id=task.id, state=state_name(task.status.state), texts=summarize_task(task))

    # stream: the agent holds after its first event until the test releases it
    stream = streaming.send_message(message(f'hold {args.hold_key}'))
    seen = []
    async for ev in stream:
        s = summarize(ev)
        seen.append(s)
        if s['state'] == 'TASK_STATE_WORKING' and len([x for x in seen if x['state'] == 'TASK_STATE_WORKING']) == 1:
            emit('stream_first', **s)
            line = await readline()
            if line != 'release':
                raise SystemExit(f'expected release, got {line!r}')
    emit('stream_done', events=seen)

    # cancel and resubscribe: a task that waits forever
    first = [summarize(ev) async for ev in polling.send_message(message('wait'))]
    wait_id = first[-1]['task_id']
    emit('wait_started', task_id=wait_id, state=first[-1]['state'])
    sub = streaming.subscribe(SubscribeToTaskRequest(id=wait_id))
    sub_events = []
    sub_first = await anext(sub)
    sub_events.append(summarize(sub_first))
    emit('resubscribed', **sub_events[0])
    cancelled = await plain.cancel_task(CancelTaskRequest(id=wait_id))
    emit('cancel', task_id=cancelled.id, state=state_name(cancelled.status.state))
    async for ev in sub:
        sub_events.append(summarize(ev))
    emit('resubscribe_done', events=sub_events)

    if args.version == '1.0':
        listed = await plain.list_tasks(ListTasksRequest())
        emit('list', task_ids=[t.id for t in listed.tasks])

    if args.push_bad:
        try:
            await plain.create_task_push_notification_config(
                TaskPushNotificationConfig(task_id=task_id, url=args.push_bad)
            )
            emit('push_bad', refused=False)
        except Exception as e:  # noqa: BLE001
            emit('push_bad', refused=True, error=str(e))
    if args.push_ok:
        try:
            cfg = await plain.create_task_push_notification_config(
                TaskPushNotificationConfig(task_id=task_id, id='hook', url=args.push_ok)
            )
            emit('push_ok', ok=True, url=cfg.url)
        except Exception as e:  # noqa: BLE001
            emit('push_ok', ok=False, error=str(e))

    emit('done')


def summarize_task(task) -> list:
    return [p.text for a in task.artifacts for p in a.parts if p.text]


if __name__ == '__main__':
    asyncio.run(main())
