"""Writes examples/bedrock-summarize.jsonl: 120 short, invented call-centre transcripts in the `bedrock`
input format (Amazon Nova request bodies, for the default `nova-lite` model), each with an inline
`reference` summary for ROUGE.

Seeded and deterministic: the same script writes the same bytes. 120 records is above Bedrock's
default minimum of 100 records per batch inference job, so the file runs as one real batch job
rather than through the small-file path. Every name, number and sentence is made up here.

    .venv/bin/python examples/make_bedrock_summarize.py           # rewrite the file
    .venv/bin/python examples/make_bedrock_summarize.py --check   # exit 1 if the file is out of date
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

OUTPUT = Path(__file__).with_name("bedrock-summarize.jsonl")
RECORDS = 120
SEED = 8
INSTRUCTION = (
    "Summarize this customer support call in one or two sentences for the case notes. "
    "Say what the customer wanted and what was done."
)

FIRST_NAMES = [
    "Ana",
    "Ben",
    "Chloe",
    "Dev",
    "Elif",
    "Farid",
    "Grace",
    "Hugo",
    "Ines",
    "Jonas",
    "Kemi",
    "Luca",
    "Maya",
    "Nils",
    "Olga",
    "Priya",
    "Quinn",
    "Rosa",
    "Sami",
    "Tariq",
    "Una",
    "Viktor",
    "Wen",
    "Yara",
]
AGENTS = ["Sam", "Alex", "Jordan", "Robin", "Taylor", "Morgan"]
PLANS = ["Basic", "Plus", "Family", "Pro"]
ITEMS = ["desk lamp", "kettle", "pair of running shoes", "phone case", "rucksack", "coffee grinder", "bike light"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]


def _money(rng: random.Random) -> str:
    return f"{rng.randint(9, 89)}.{rng.choice(['00', '49', '99', '50'])}"


def double_charge(rng, customer, agent):
    amount = _money(rng)
    turns = [
        ("Agent", f"Thanks for calling, this is {agent}. How can I help?"),
        ("Customer", f"Hi, I'm {customer}. I was charged {amount} twice for this month's bill."),
        ("Agent", "Let me check your account. Yes, I can see two identical payments on the same day."),
        ("Customer", "Can you give the second one back?"),
        ("Agent", f"I've refunded the duplicate payment of {amount}. It should reach your card in three to five days."),
        ("Customer", "Great, thank you."),
    ]
    summary = (
        f"{customer} was charged {amount} twice for the monthly bill. "
        f"The agent refunded the duplicate payment, due in three to five days."
    )
    return turns, summary


def outage(rng, customer, agent):
    hours = rng.randint(2, 9)
    turns = [
        ("Agent", f"Support, {agent} speaking."),
        ("Customer", f"This is {customer}. My internet has been down for {hours} hours."),
        ("Agent", "I'm sorry about that. There is a known fault at the local exchange in your area."),
        ("Customer", "When will it be fixed?"),
        ("Agent", "Engineers expect to restore service by this evening, and I've added a credit for today."),
    ]
    summary = (
        f"{customer} reported an internet outage of {hours} hours caused by a local exchange fault. "
        f"The agent said service should return this evening and added a credit for the day."
    )
    return turns, summary


def password_reset(rng, customer, agent):
    turns = [
        ("Agent", f"Hello, {agent} here."),
        ("Customer", f"Hi, it's {customer}. I'm locked out of my online account after too many attempts."),
        ("Agent", "I can help. I've verified your identity and unlocked the account."),
        ("Agent", "I've also sent a reset link to the email address on file."),
        ("Customer", "Got it, I've set a new password. Thanks."),
    ]
    summary = (
        f"{customer} was locked out of the online account after too many login attempts. "
        f"The agent unlocked it and sent a password reset link, which worked."
    )
    return turns, summary


def late_delivery(rng, customer, agent):
    order = rng.randint(100000, 999999)
    item = rng.choice(ITEMS)
    day = rng.choice(WEEKDAYS)
    turns = [
        ("Agent", f"Thanks for calling, my name is {agent}."),
        ("Customer", f"Hello, I'm {customer}. My order {order}, a {item}, was due last week and hasn't arrived."),
        ("Agent", "I see it was held at the depot because of a wrong postcode on the label."),
        ("Customer", "Oh. Can you correct it?"),
        ("Agent", f"Done. The courier will deliver it on {day}, and I've refunded the delivery fee."),
    ]
    summary = (
        f"{customer}'s order {order} ({item}) was late because of a wrong postcode on the label. "
        f"The agent corrected it, rebooked delivery for {day} and refunded the delivery fee."
    )
    return turns, summary


def upgrade(rng, customer, agent):
    old, new = rng.sample(PLANS, 2)
    turns = [
        ("Agent", f"Good morning, {agent} speaking."),
        ("Customer", f"Hi, {customer} here. I'd like to move from the {old} plan to the {new} plan."),
        ("Agent", f"Sure. The {new} plan starts with your next billing cycle. Shall I go ahead?"),
        ("Customer", "Yes please."),
        ("Agent", "It's done. You'll get a confirmation email in a few minutes."),
    ]
    summary = (
        f"{customer} asked to switch from the {old} plan to the {new} plan. "
        f"The agent made the change from the next billing cycle and sent a confirmation email."
    )
    return turns, summary


def cancel(rng, customer, agent):
    months = rng.randint(2, 6)
    turns = [
        ("Agent", f"Hello, you're through to {agent}."),
        ("Customer", f"Hi, I'm {customer}. I want to cancel my subscription, it's too expensive."),
        ("Agent", f"I understand. I can offer half price for the next {months} months if you stay."),
        ("Customer", "That works, I'll keep it then."),
        ("Agent", "Lovely, the discount is applied from today."),
    ]
    summary = (
        f"{customer} called to cancel the subscription because of the price. "
        f"The customer accepted a half-price offer for {months} months and stayed."
    )
    return turns, summary


def address_change(rng, customer, agent):
    street = rng.choice(["Mill Lane", "Harbour Road", "Station Street", "Orchard Close", "Bridge Row"])
    number = rng.randint(2, 120)
    turns = [
        ("Agent", f"Customer service, {agent} speaking."),
        ("Customer", f"Hello, this is {customer}. I've moved and need to update my address."),
        ("Agent", "Of course. What's the new address?"),
        ("Customer", f"{number} {street}."),
        ("Agent", f"Updated. Bills and letters will go to {number} {street} from now on."),
    ]
    summary = f"{customer} moved house and asked to update the address. The agent changed it to {number} {street}."
    return turns, summary


def broken_router(rng, customer, agent):
    turns = [
        ("Agent", f"Technical support, {agent} here."),
        ("Customer", f"Hi, I'm {customer}. My router's lights keep flashing red and nothing connects."),
        ("Agent", "Let's restart it together. Unplug it for thirty seconds, then plug it back in."),
        ("Customer", "Still red."),
        ("Agent", "Then the router is faulty. I've ordered a free replacement that arrives within two days."),
    ]
    summary = (
        f"{customer}'s router kept flashing red and a restart did not help. "
        f"The agent ordered a free replacement router, arriving within two days."
    )
    return turns, summary


SCENARIOS = [double_charge, outage, password_reset, late_delivery, upgrade, cancel, address_change, broken_router]


def records() -> list[dict]:
    rng = random.Random(SEED)
    lines = []
    for number in range(1, RECORDS + 1):
        scenario = SCENARIOS[(number - 1) % len(SCENARIOS)]
        turns, summary = scenario(rng, rng.choice(FIRST_NAMES), rng.choice(AGENTS))
        transcript = "\n".join(f"{speaker}: {text}" for speaker, text in turns)
        lines.append(
            {
                "recordId": f"call-{number:04d}",
                "modelInput": {
                    "schemaVersion": "messages-v1",
                    "system": [{"text": INSTRUCTION}],
                    "messages": [{"role": "user", "content": [{"text": transcript}]}],
                    "inferenceConfig": {"maxTokens": 200, "temperature": 0.2},
                },
                "reference": summary,
            }
        )
    return lines


def render() -> str:
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in records())


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT} is out of date; run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {RECORDS} records to {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
