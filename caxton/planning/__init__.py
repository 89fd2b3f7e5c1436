"""Planning: desired state x live state -> Plan (pure: no I/O).

``build.make_plan`` constructs the plan, ``diff`` computes field-level
differences with deepdiff, ``redact`` hides secrets, ``render`` turns a plan
into text and ``markdown`` into markdown, and ``planfile`` (de)serialises it
with version checks.
"""
