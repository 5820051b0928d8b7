# Counts, in a per-instruction executed listing of one function (python3 /tmp/cgins.py output),
# the instructions of its frame (push/pop, sub/add rsp) and the spills and reloads (mov to or
# from [rsp+...]). Stops at the function's first `ret` (cgins may list the next function after).
import re, sys
frame = spill_st = spill_ld = other_rsp = total = 0
for line in open(sys.argv[1]):
    m = re.match(r'\s*([\d.]+) ([0-9a-f]+) (.*)', line)
    if not m:
        continue
    n = float(m.group(1)); ins = m.group(3)
    total += n
    op = ins.split()[0]
    if op in ('push', 'pop') or re.match(r'(sub|add)\s+rsp,', ins):
        frame += n
    elif op == 'mov' and re.match(r'mov\s+\w+ PTR \[rsp[+-]', ins):
        spill_st += n
    elif op == 'mov' and re.search(r',\w+ PTR \[rsp[+-]', ins):
        spill_ld += n
    elif '[rsp' in ins and not ins.startswith('lock'):
        other_rsp += n
    if op == 'ret':
        break
print(f'total {total:g} frame(push/pop/sub/add rsp) {frame:g} spill-stores {spill_st:g} reloads {spill_ld:g} other-ops-with-stack-operand {other_rsp:g}')
