"""An A2A agent built on the a2a-sdk, used by Switchboard's A2A proxy tests and as a runnable example.

It speaks A2A 1.0 and (compat mode) 0.3 JSON-RPC on one endpoint, and serves its agent card at
/.well-known/agent-card.json. What it does depends on the text of the user message:

- `hello ...`   completes at once with an artifact `replica=<name> echo=<text>`.
- `hold KEY`    goes to `working` ("step 1"), then waits until `POST /_test/release/KEY`, then
                adds an artifact ("step 2") and completes. Tests use it to prove that events
                reach the client as the agent emits them, not at the end.
- `wait`        goes to `working` and stays there until cancelled (cancel and resubscribe tests).

Usage: python agent.py --port 0 --name a [--host 127.0.0.1] [--public-url URL] [--sign]
It prints one line `READY <port>` on stdout once it accepts connections.
"""

import argparse
import asyncio
import logging
import socket
import sys

import uvicorn

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from a2a.helpers.proto_helpers import new_text_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryPushNotificationConfigStore, InMemoryTaskStore, TaskUpdater
from a2a.types.a2a_pb2 import (
    AgentCapabilities,
    AgentCard,
    AgentCardSignature,
    AgentInterface,
    AgentSkill,
    Role,
    TaskState,
)
from a2a.helpers.proto_helpers import new_task_from_user_message


RELEASES: dict[str, asyncio.Event] = {}


def release_event(key: str) -> asyncio.Event:
    return RELEASES.setdefault(key, asyncio.Event())


class TestAgent(AgentExecutor):
    def __init__(self, name: str) -> None:
        self.name = name

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        text = context.get_user_input().strip()
        task = context.current_task
        if task is None:
            task = new_task_from_user_message(context.message)
            await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        if text.startswith('hold'):
            key = text.split(maxsplit=1)[1] if ' ' in text else ''
            await updater.update_status(
                TaskState.TASK_STATE_WORKING,
                message=new_text_message('step 1', role=Role.ROLE_AGENT),
            )
            await release_event(key).wait()
            await updater.add_artifact(
                [new_text_part(f'replica={self.name} step 2')], name='result'
            )
            await updater.complete()
        elif text.startswith('wait'):
            await updater.update_status(
                TaskState.TASK_STATE_WORKING,
                message=new_text_message('waiting', role=Role.ROLE_AGENT),
            )
            await asyncio.Event().wait()
        else:
            await updater.add_artifact(
                [new_text_part(f'replica={self.name} echo={text}')], name='result'
            )
            await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        task = context.current_task
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.cancel()


def build_card(url: str, name: str, sign: bool, card_bytes: int = 0) -> AgentCard:
    # --card-bytes pads the description: a hostile agent with a giant card.
    description = 'Echo agent for Switchboard tests'
    description += 'x' * max(0, card_bytes - len(description))
    card = AgentCard(
        name=f'switchboard-test-agent-{name}',
        description=description,
        version='1.0.0',
        supported_interfaces=[
            AgentInterface(url=url, protocol_binding='JSONRPC', protocol_version='1.0'),
            AgentInterface(url=url, protocol_binding='JSONRPC', protocol_version='0.3'),
            AgentInterface(url=url + 'rest', protocol_binding='HTTP+JSON', protocol_version='1.0'),
        ],
        capabilities=AgentCapabilities(
            streaming=True, push_notifications=True, extended_agent_card=True
        ),
        default_input_modes=['text/plain'],
        default_output_modes=['text/plain'],
        skills=[
            AgentSkill(id='echo', name='echo', description='echoes', tags=['test'])
        ],
    )
    card.security_schemes['agentKey'].api_key_security_scheme.location = 'header'
    card.security_schemes['agentKey'].api_key_security_scheme.name = 'x-agent-key'
    if sign:
        card.signatures.append(
            AgentCardSignature(protected='eyJhbGciOiJFUzI1NiJ9', signature='c2lnbmF0dXJl')
        )
    return card


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument('--host', default='127.0.0.1')
    p.add_argument('--port', type=int, default=0)
    p.add_argument('--name', default='a')
    p.add_argument('--public-url')
    p.add_argument('--sign', action='store_true')
    p.add_argument('--card-bytes', type=int, default=0)
    args = p.parse_args()

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    port = sock.getsockname()[1]
    url = args.public_url or f'http://{args.host}:{port}/'

    card = build_card(url, args.name, args.sign, args.card_bytes)
    # The extended card (what authenticated clients see) adds a skill.
    extended = AgentCard()
    extended.CopyFrom(card)
    extended.skills.append(
        AgentSkill(id='admin', name='admin', description='extended only', tags=['test'])
    )
    handler = DefaultRequestHandler(
        agent_executor=TestAgent(args.name),
        task_store=InMemoryTaskStore(),
        agent_card=card,
        push_config_store=InMemoryPushNotificationConfigStore(),
        extended_agent_card=extended,
    )

    async def release(request: Request) -> JSONResponse:
        release_event(request.path_params['key']).set()
        return JSONResponse({'released': request.path_params['key']})

    routes = [
        *create_agent_card_routes(card),
        *create_agent_card_routes(card, card_url='/.well-known/agent.json'),
        *create_jsonrpc_routes(handler, rpc_url='/', enable_v0_3_compat=True),
        Route('/_test/release/{key}', release, methods=['POST']),
    ]
    app = Starlette(routes=routes)
    config = uvicorn.Config(app, log_level='warning', lifespan='off')
    server = uvicorn.Server(config)

    async def announce() -> None:
        while not server.started:
            await asyncio.sleep(0.01)
        print(f'READY {port}', flush=True)

    await asyncio.gather(server.serve(sockets=[sock]), announce())


if __name__ == '__main__':
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(main())
