# Per-instruction executed listing of one function from a callgrind --dump-instr=yes output.
# Usage: python3 cgins.py CGFILE BINARY FUNCTION N  (prints instructions run >= 0.9 N times, per
# operation; the listing may run on into the next function: cut it at the first ret).
import sys, re, subprocess, collections
f, binary, func = sys.argv[1], sys.argv[2], sys.argv[3]
N = int(sys.argv[4])
costs = collections.Counter()
cur_fn = None; last = 0
for line in open(f):
    line = line.rstrip('\n')
    if line.startswith('fn='):
        cur_fn = line; continue
    if line.startswith(('calls=', 'cfn=', 'cfi=', 'cfl=', 'fl=', 'fi=', 'fe=', 'ob=', 'cob=')):
        if line.startswith('calls='):
            skip_next = True
        continue
    m = re.match(r'^(0x[0-9a-f]+|\+\d+|-\d+|\*)\s+(\S+)\s+(\d+)', line)
    if m:
        a = m.group(1)
        if a.startswith('0x'): addr = int(a, 16)
        elif a.startswith('+'): addr = last + int(a[1:])
        elif a.startswith('-'): addr = last - int(a[1:])
        else: addr = last
        last = addr
        if 'skip_next' in dir() and skip_next:
            skip_next = False  # inclusive call cost line, ignore
            continue
        costs[addr] += int(m.group(3))
# disassemble function
nm = subprocess.run(['nm', '-C', binary], capture_output=True, text=True).stdout
start = None
for l in nm.splitlines():
    if l.endswith(' ' + func):
        start = int(l.split()[0], 16)
dis = subprocess.run(['objdump', '-d', '--no-show-raw-insn', '-M', 'intel', '-C', binary, '--start-address=%#x' % start, '--stop-address=%#x' % (start + 60000)], capture_output=True, text=True).stdout
total = 0
for l in dis.splitlines():
    m = re.match(r'^\s+([0-9a-f]+):\s+(.*)$', l)
    if not m: continue
    a = int(m.group(1), 16)
    c = costs.get(a, 0)
    if c >= N * float(__import__("os").environ.get("TH","0.9")):
        total += c
        print('%6.2f %x %s' % (c / N, a, m.group(2)[:90]))
print('total per op', total / N)
