"""Generates demo/business-rules.md: short business-process descriptions, each paired with the
rules that implement it. Deterministic; run `python3 demo/make_demo.py` to regenerate."""
import random
from pathlib import Path

rng = random.Random(7)
DEPARTMENTS = ["Sales", "Finance", "Support", "Purchasing", "Logistics", "HR", "Legal", "IT"]
OBJECTS = [
    ("refund request", "refund", "amount"), ("purchase order", "order", "total"),
    ("expense claim", "claim", "amount"), ("support ticket", "ticket", "priority"),
    ("invoice", "invoice", "total"), ("leave request", "request", "days"),
    ("contract renewal", "contract", "value"), ("access request", "request", "level"),
    ("shipment", "shipment", "weight"), ("discount request", "discount", "percentage"),
]
ROLES = ["team lead", "department manager", "finance controller", "duty officer", "account owner", "director"]
LIMITS = [50, 100, 250, 500, 1000, 2500, 5000, 10000]
DAYS = [1, 2, 3, 5, 7, 10, 14, 30]
CHANNELS = ["e-mail", "the customer portal", "phone", "the internal form", "chat"]

def process(i):
    obj, short, field = rng.choice(OBJECTS)
    dept = rng.choice(DEPARTMENTS)
    role, role2 = rng.sample(ROLES, 2)
    limit = rng.choice(LIMITS)
    days = rng.choice(DAYS)
    channel = rng.choice(CHANNELS)
    title = f"{dept}: handling a {obj}"
    text = (
        f"A {obj} arrives through {channel}. {dept} checks that it is complete. "
        f"If the {field} is at most {limit}, the {role} approves it on the same day. "
        f"Above {limit}, the {role2} must approve it within {days} days. "
        f"When nobody decides in time, the {short} is escalated and the requester is told why."
    )
    rules = [
        f"WHEN {short}.received THEN check {short}.complete",
        f"IF {short}.{field} <= {limit} THEN approver = \"{role}\"; deadline = 1 day",
        f"IF {short}.{field} > {limit} THEN approver = \"{role2}\"; deadline = {days} days",
        f"IF now > {short}.deadline AND {short}.status = \"open\" THEN escalate({short}); notify(requester)",
    ]
    return f"## {i}. {title}\n\n{text}\n\nRules:\n\n" + "\n".join(f"- `{r}`" for r in rules) + "\n"

out = ["# Business processes and the rules that implement them\n"]
out += [process(i + 1) for i in range(160)]
Path(__file__).with_name("business-rules.md").write_text("\n".join(out))
