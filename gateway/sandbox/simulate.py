"""`messenger-gateway simulate <event>`: post what Meta would post to any running gateway.

One event per call, in Meta's envelope, signed with FACEBOOK_APP_SECRET as Meta signs it, to
`<url>/facebook`; the gateway's answer is printed, and the exit status is 0 only if it took the
event (200). For scripts and demos, against a sandbox or any gateway whose app secret you hold.
"""

from __future__ import annotations

import argparse
import sys

import httpx

from gateway.sandbox import payloads
from gateway.sandbox.server import DEMO_PAGE_ID, DEMO_PEOPLE, psid_of


def add_parser(commands: argparse._SubParsersAction, url: str) -> None:
    """The `simulate` command and its events, on the CLI's subcommands."""
    simulate = commands.add_parser(
        "simulate", help="post a signed webhook event to a running gateway, as Meta would",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    events = simulate.add_subparsers(dest="event", required=True, metavar="EVENT")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=url, help=f"the gateway (default {url})")
    common.add_argument("--page", default=DEMO_PAGE_ID,
                        help=f"the page's id (default: the sandbox's demo page, {DEMO_PAGE_ID})")
    common.add_argument("--sender", default=psid_of(DEMO_PEOPLE[0]),
                        help="the person's page-scoped id (default: the sandbox's "
                             f"{DEMO_PEOPLE[0]})")
    message = events.add_parser("message", parents=[common], help="the person writes")
    message.add_argument("--text", required=True)
    message.add_argument("--mid", help="Meta's message id (default: a new one)")
    reaction = events.add_parser("reaction", parents=[common],
                                 help="the person reacts to a message, or takes it back")
    reaction.add_argument("--mid", required=True, help="the message reacted to")
    reaction.add_argument("--emoji", default="\u2764\ufe0f")
    reaction.add_argument("--unreact", action="store_true")
    read = events.add_parser("read", parents=[common],
                             help="the person has read everything the page sent until now")
    read.add_argument("--watermark", type=int, help="milliseconds (default: now)")
    postback = events.add_parser("postback", parents=[common],
                                 help="the person taps a button")
    postback.add_argument("--title", default="Get Started")
    postback.add_argument("--payload", default="GET_STARTED")


def event_of(args: argparse.Namespace) -> dict:
    page, sender = args.page, args.sender
    if args.event == "message":
        return payloads.text(page, sender, args.text, message_id=args.mid)
    if args.event == "reaction":
        return payloads.reaction(page, sender, args.mid,
                                 "unreact" if args.unreact else "react", emoji=args.emoji)
    if args.event == "read":
        return payloads.read(page, sender, args.watermark or payloads.ts())
    return payloads.postback(page, sender, args.title, args.payload)


def run(args: argparse.Namespace, secret: str) -> int:
    """Post the event; print the answer; 0 if the gateway took it."""
    if not secret:
        print("messenger-gateway simulate: FACEBOOK_APP_SECRET is not set: set it to the "
              "gateway's app secret (a sandbox prints its own at start-up)", file=sys.stderr)
        return 2
    event = event_of(args)
    body, headers = payloads.signed(secret, payloads.envelope(args.page, event))
    url = args.url.rstrip("/") + "/facebook"
    try:
        answer = httpx.post(url, content=body, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        print(f"messenger-gateway simulate: cannot post to {url}: {exc}", file=sys.stderr)
        return 1
    if answer.status_code != 200:
        print(f"messenger-gateway simulate: the gateway answered {answer.status_code}: "
              f"{answer.text[:500]}", file=sys.stderr)
        return 1
    print(answer.text)
    return 0
