# Instructions per pair by function (exclusive), from a callgrind output of N pairs.
import re, subprocess, sys, collections
f, n = sys.argv[1], int(sys.argv[2])
out = subprocess.run(['callgrind_annotate', '--inclusive=no', '--threshold=100', f], capture_output=True, text=True).stdout
tot = collections.Counter()
for line in out.split('-- Auto-annotated source')[0].splitlines():
    m = re.match(r'^\s*([\d,]+) \(\s*[\d.]+%\)  (\S.*)$', line)
    if not m or 'PROGRAM TOTALS' in line:
        continue
    fn = re.sub(r' \[.*', '', m.group(2)).split(':')[-1]
    tot[fn] += int(m.group(1).replace(',', ''))
for fn, c in tot.most_common(6):
    print(f'{c / n:8.2f} {fn}')
