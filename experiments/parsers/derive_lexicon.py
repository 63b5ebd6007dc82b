"""Count candidate lexicon tables for the scene-graph rules from FACTUAL *train*.

Runs the current rules over the train split, aligns their output with the human graphs and prints
(as JSON) the tables whose entries ``parsers/lexicon.py`` marks as train-derived: predicate
rewrites by (predicate, object head) and by predicate, object-name rewrites, nouns that are not
objects, compound modifiers read as attributes or as ``have`` relations, and attribute values the
annotation does not use. The printed tables are candidates: they were reviewed before going into
``parsers/lexicon.py``. Uses train only; never run it on dev or test.

    python experiments/parsers/derive_lexicon.py [--train ../shared/data/factual/train.jsonl] [--out tables.json]
"""
import argparse
import collections
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from parsers import Normalizer, SceneGraphParser, graph_tuples  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", default=str(Path(__file__).resolve().parents[3] / "shared/data/factual/train.jsonl"))
    ap.add_argument("--out", help="write the tables here as JSON (default: stdout)")
    args = ap.parse_args()
    with open(args.train, encoding="utf-8") as f:
        recs = [json.loads(line) for line in f if line.strip()]
    P=SceneGraphParser(); norm=Normalizer(P.nlp)
    graphs=list(P.pipe([r['caption'] for r in recs]))
    # the rules already apply the current tables; the counts show what is still mis-mapped on top of them
    rel_key=collections.defaultdict(collections.Counter)   # (pred, obj_head) -> outcome
    rel_pred=collections.defaultdict(collections.Counter)
    name_map=collections.defaultdict(collections.Counter)
    obj_cnt=collections.Counter(); obj_ok=collections.Counter()
    comp=collections.defaultdict(collections.Counter)
    attr_cnt=collections.Counter(); attr_ok=collections.Counter()
    for g,r in zip(graphs,recs):
        p=g.to_dict()
        tp,tg=graph_tuples(p,norm),graph_tuples(r,norm)
        gso=collections.defaultdict(set)
        for s,pr,o in tg['relations']: gso[(s,o)].add(pr)
        heads={norm(o.lemma): norm(o.head) for o in g.objects}
        for s,pr,o in tp['relations']:
            oh=heads.get(o,o).split()[-1]
            if pr in gso[(s,o)]: out=('=',)
            elif gso[(s,o)]: out=('fwd',sorted(gso[(s,o)])[0])
            elif gso[(o,s)]: out=('rev',sorted(gso[(o,s)])[0])
            else: out=('X',)
            rel_key[(pr,oh)][out]+=1; rel_pred[pr][out]+=1
        gobj={x[0] for x in tg['objects']}; pobj={x[0] for x in tp['objects']}
        for o in pobj:
            obj_cnt[o]+=1; obj_ok[o]+= o in gobj
        up=pobj-gobj; ug=gobj-pobj
        if len(up)==1 and len(ug)==1:
            name_map[next(iter(up))][next(iter(ug))]+=1
        gattr=tg['attributes']
        for o in g.objects:
            ws=norm(o.lemma).split()
            if len(ws)==2:
                m,h=ws
                if (h,m) in gattr: comp[m]['attr']+=1
                elif (m,'have',h) in tg['relations']: comp[m]['have']+=1
                elif ' '.join(ws) in gobj: comp[m]['name']+=1
                else: comp[m]['other']+=1
        for a in tp['attributes']:
            attr_cnt[a[1]]+=1; attr_ok[a[1]]+= a in gattr
    # tables
    PRED_OBJ={}
    for (pr,oh),c in rel_key.items():
        tot=sum(c.values()); (best,n),=c.most_common(1)
        if best!=('=',) and best!=('X',) and n>=3 and n/tot>=0.5 and n>=2*c[('=',)]:
            PRED_OBJ[(pr,oh)]=best
    PRED={}
    for pr,c in rel_pred.items():
        tot=sum(c.values()); (best,n),=c.most_common(1)
        if best!=('=',) and best!=('X',) and n>=4 and n/tot>=0.5:
            PRED[pr]=best
    NAME={}
    for w,c in name_map.items():
        (best,n),=c.most_common(1)
        if n>=4 and n/obj_cnt[w]>=0.5 and obj_ok[w]/obj_cnt[w]<0.3: NAME[w]=best
    NONOBJ=sorted(w for w in obj_cnt if obj_cnt[w]>=5 and obj_ok[w]/obj_cnt[w]<0.25)
    CATTR=sorted(m for m,c in comp.items() if c['attr']>=3 and c['attr']>=c['name']+c['have'])
    CHAVE=sorted(m for m,c in comp.items() if c['have']>=3 and c['have']>=c['name']+c['attr'])
    BADATTR=sorted(a for a in attr_cnt if attr_cnt[a]>=5 and attr_ok[a]/attr_cnt[a]<0.2)

    tables = {"PRED_OBJ": [[list(k), list(v)] for k, v in PRED_OBJ.items()], "PRED": {k: list(v) for k, v in PRED.items()},
              "NAME": NAME, "NONOBJ": NONOBJ, "CATTR": CATTR, "CHAVE": CHAVE, "BADATTR": BADATTR}
    text = json.dumps(tables, indent=1, sort_keys=True)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    else:
        print(text)


if __name__ == "__main__":
    main()
