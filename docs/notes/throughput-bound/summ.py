import sys, statistics as st, collections
# usage: summ.py ROUNDS.txt [REF] : per row, median/min/max M msgs/s and the median over rounds of row/REF (REF default spsc_ring_tput)
rows=collections.defaultdict(dict)
for l in open(sys.argv[1]):
    p=l.split()
    if len(p)==3: rows[int(p[0])][p[1]]=float(p[2])
ref=sys.argv[2] if len(sys.argv)>2 else 'spsc_ring_tput'
names=sorted({k for r in rows.values() for k in r})
print("%-20s %8s %8s %8s   %s"%("row","median","min","max","median ratio to "+ref+" (paired)"))
for n in names:
    v=[r[n] for r in rows.values() if n in r]
    rat=[r[n]/r[ref] for r in rows.values() if n in r and ref in r]
    print("%-20s %8.1f %8.1f %8.1f   %.2f"%(n, st.median(v), min(v), max(v), st.median(rat)))
