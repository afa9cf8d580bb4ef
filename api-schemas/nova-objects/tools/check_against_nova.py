#!/usr/bin/env python3
"""Cross-check novakvm objects against the real nova 34.0.0 registry.

Reads JSON on stdin: {"registry": name -> {version, fields: [{name, kind,
nullable, object?}]}, "manifests": name -> [[name, version], ...],
"objects": [primitive, ...]}; prints {"mismatches": [...], "checked": {...},
"numa": [...], "hv_specs": [...], "cpu_info": [...]}. Run by
tests/objects_nova_python.rs with a Python that has nova 34.0.0 installed.
"""
import importlib, json, pkgutil, sys, warnings
warnings.simplefilter('ignore')
from nova import objects
objects.register_all()
from nova.objects import base
from oslo_versionedobjects import base as ovo_base
from oslo_versionedobjects import fields as F
from nova.objects import fields as NF

inp = json.load(sys.stdin)
ours = inp['registry']
out = {'mismatches': [], 'checked': {}}
bad = out['mismatches'].append


def kind(field):
    t = field._type
    if isinstance(t, F.Object):
        return ['object', t._obj_name]
    if isinstance(t, F.List) and isinstance(t._element_type._type, F.Object):
        return ['list_of_objects', t._element_type._type._obj_name]
    def simple(t):
        if isinstance(t, NF.AddressBase):
            return 'string'
        if isinstance(t, (NF.NetworkModel, NF.NetworkVIFModel)):
            return 'json_string'
        if isinstance(t, F.IPNetwork):
            return 'ip_network'
        if isinstance(t, F.IPAddress):
            return 'ip_address'
        if isinstance(t, F.UUID):
            return 'uuid'
        if isinstance(t, F.DateTime):
            return 'datetime'
        if isinstance(t, F.Boolean):
            return 'boolean'
        if isinstance(t, F.Integer):
            return 'integer'
        if isinstance(t, F.Float):
            return 'number'
        if isinstance(t, (F.String, F.Enum, F.StringPattern)):
            return 'string'
        return None
    s = simple(t)
    if s:
        return [s]
    if isinstance(t, F.Dict):
        e = t._element_type
        es = simple(e._type)
        if isinstance(e._type, F.List):
            return ['dict_of_list_of_strings'] if simple(e._type._element_type._type) == 'string' else ['?']
        if isinstance(e._type, F.Set):
            return ['dict_of_set_of_integers']
        if es == 'string':
            return ['dict_of_nullable_strings' if e._nullable else 'dict_of_strings']
        if es == 'integer':
            return ['dict_of_integers']
    if isinstance(t, (F.List, F.Set)):
        e = t._element_type
        es = simple(e._type)
        pre = 'set_of_' if isinstance(t, F.Set) else 'list_of_'
        if es in ('string', 'uuid'):
            return [pre + 'strings']
        if es == 'integer':
            return [pre + 'integers']
        if isinstance(e._type, F.Set):
            return ['list_of_sets_of_integers']
        if isinstance(e._type, F.List):
            return ['list_of_lists_of_strings']
        if isinstance(e._type, F.Dict):
            return ['list_of_dict_of_nullable_strings']
    return ['?' + type(t).__name__]


# 1. Every registered nova object class: version, fields (order), types.
classes = base.NovaObjectRegistry.obj_classes()
for name, cls in classes.items():
    c = cls[0]
    o = ours.get(name)
    if o is None:
        bad(f'{name}: registered in nova, missing in ours')
        continue
    if o['version'] != c.VERSION:
        bad(f"{name}: version ours {o['version']} nova {c.VERSION}")
    names = [f['name'] for f in o['fields']]
    if names != list(c.fields):
        bad(f'{name}: fields ours {names} nova {list(c.fields)}')
    for f in o['fields']:
        nf = c.fields.get(f['name'])
        if nf is None:
            continue
        if nf.nullable != f['nullable']:
            bad(f"{name}.{f['name']}: nullable ours {f['nullable']} nova {nf.nullable}")
        k = kind(nf)
        mine = [f['kind']] + ([f['object']] if 'object' in f else [])
        if k != mine and not (k == ['string'] and mine == ['any']):
            bad(f"{name}.{f['name']}: kind ours {mine} nova {k}")
out['checked']['classes'] = len(classes)

# 2. Version manifests (obj_tree_get_versions), keys in order.
for name, manifest in inp['manifests'].items():
    theirs = list(ovo_base.obj_tree_get_versions(name).items())
    if [list(x) for x in theirs] != manifest:
        bad(f'{name}: manifest ours {manifest} nova {theirs}')
out['checked']['manifests'] = len(inp['manifests'])


def diff(a, b, path=''):
    """Paths where two JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append(f'{path}/{k}: only in {"ours" if k in a else "nova"}')
            else:
                out += diff(a[k], b[k], f'{path}/{k}')
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in diff(x, y, f'{path}[{i}]')]
    return [] if a == b else [f'{path}: ours {json.dumps(a)[:200]} nova {json.dumps(b)[:200]}']


def norm(v):
    if isinstance(v, dict):
        return {k: (sorted(x) if k == 'nova_object.changes' else norm(x)) for k, x in v.items()}
    if isinstance(v, list):
        return [norm(x) for x in v]
    return v


# 3. Our primitives load in nova and serialize back to the same thing.
for prim in inp['objects']:
    obj = base.NovaObject.obj_from_primitive(prim)
    back = obj.obj_to_primitive()
    for d in diff(norm(prim), norm(json.loads(json.dumps(back)))):
        bad(f"{prim['nova_object.name']}: nova re-serializes differently at {d}")
    if prim['nova_object.name'] == 'ComputeNode' and obj.obj_attr_is_set('numa_topology') and obj.numa_topology:
        topo = objects.NUMATopology.obj_from_db_obj(obj.numa_topology)
        out.setdefault('numa', []).append({
            'cells': len(topo.cells),
            'cpuset': sorted(topo.cells[0].cpuset),
            'pcpuset': sorted(topo.cells[0].pcpuset),
            'siblings': [sorted(s) for s in topo.cells[0].siblings],
            'mempages': [[p.size_kb, p.total, p.used, p.reserved] for p in topo.cells[0].mempages],
            'physnets': sorted(topo.cells[0].network_metadata.physnets),
            'socket': topo.cells[0].socket,
        })
    if prim['nova_object.name'] == 'ComputeNode':
        out.setdefault('hv_specs', []).append([list(s.to_list()) for s in obj.supported_hv_specs])
        out.setdefault('cpu_info', []).append(json.loads(obj.cpu_info))
out['checked']['objects'] = len(inp['objects'])
print(json.dumps(out))
