#!/usr/bin/env python3
"""Extract nova's versioned-object registry (names, versions, fields) by
reading nova's source with `ast` (no import of nova needed).

Usage: extract_registry.py NOVA_SRC_DIR > registry.json
NOVA_SRC_DIR is the directory holding the `nova` package (an unpacked nova
34.0.0 wheel). The output lists every class with a VERSION and a `fields`
dict in nova/objects and nova/notifications/objects, with the fields of its
bases merged in oslo.versionedobjects' order (own fields first, then each
base in MRO order, first definition wins).
"""
import ast
import json
import pathlib
import sys

# Field class name (as written in nova) -> wire kind understood by
# src/objects/registry.rs.
SIMPLE = {
    'StringField': 'string', 'SensitiveStringField': 'string',
    'VersionPredicateField': 'string', 'ResourceClassField': 'string',
    'IntegerField': 'integer', 'NonNegativeIntegerField': 'integer',
    'FloatField': 'number', 'NonNegativeFloatField': 'number',
    'BooleanField': 'boolean', 'FlexibleBooleanField': 'boolean',
    'DateTimeField': 'datetime', 'UUIDField': 'uuid',
    'IPAddressField': 'ip_address', 'IPV4AddressField': 'ip_address',
    'IPV6AddressField': 'ip_address', 'IPV4AndV6AddressField': 'ip_address',
    'IPNetworkField': 'ip_network', 'IPV4NetworkField': 'ip_network',
    'IPV6NetworkField': 'ip_network', 'MACAddressField': 'string',
    'PCIAddressField': 'string', 'USBAddressField': 'string',
    'SCSIAddressField': 'string', 'IDEAddressField': 'string',
    'XenAddressField': 'string',
    'DictOfStringsField': 'dict_of_strings',
    'DictOfNullableStringsField': 'dict_of_nullable_strings',
    'DictOfIntegersField': 'dict_of_integers',
    'DictOfListOfStringsField': 'dict_of_list_of_strings',
    'DictOfSetOfIntegersField': 'dict_of_set_of_integers',
    'ListOfStringsField': 'list_of_strings',
    'ListOfUUIDField': 'list_of_strings',
    'ListOfIntegersField': 'list_of_integers',
    'SetOfIntegersField': 'set_of_integers',
    'SetOfStringsField': 'set_of_strings',
    'ListOfSetsOfIntegersField': 'list_of_sets_of_integers',
    'ListOfListsOfStringsField': 'list_of_lists_of_strings',
    'ListOfDictOfNullableStringsField': 'list_of_dict_of_nullable_strings',
    'NetworkModelField': 'json_string', 'NetworkVIFModelField': 'json_string',
    'EnumField': 'string',
}


def field_kind(call):
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, 'id', '?')
    nullable = False
    for kw in call.keywords:
        if kw.arg == 'nullable' and isinstance(kw.value, ast.Constant):
            nullable = bool(kw.value.value)
    if name in ('ObjectField', 'ListOfObjectsField'):
        arg = call.args[0]
        obj = arg.value if isinstance(arg, ast.Constant) else '?'
        kind = 'object' if name == 'ObjectField' else 'list_of_objects'
        return {'kind': kind, 'object': obj, 'nullable': nullable}
    if name in SIMPLE:
        return {'kind': SIMPLE[name], 'nullable': nullable}
    if name.endswith('EnumField') or (name.endswith('Field') and name[:-5] in ENUMS):
        return {'kind': 'string', 'nullable': nullable}
    if name == 'Field':
        return {'kind': 'any', 'nullable': nullable}
    print(f'warning: unknown field class {name}', file=sys.stderr)
    return {'kind': 'any', 'nullable': nullable}


ENUMS = set()


def dict_fields(node):
    """Fields of a `fields = {...}` or `fields = dict(X.fields, **{...})`."""
    out = []
    if isinstance(node, ast.Dict):
        for k, v in zip(node.keys, node.values):
            if isinstance(k, ast.Constant) and isinstance(v, ast.Call):
                out.append((k.value, field_kind(v)))
    return out


def main():
    root = pathlib.Path(sys.argv[1])
    fsrc = (root / 'nova/objects/fields.py').read_text()
    for n in ast.parse(fsrc).body:
        if isinstance(n, ast.ClassDef) and n.name.endswith('Field'):
            for b in n.body:
                if isinstance(b, ast.Assign) and getattr(b.targets[0], 'id', '') == 'AUTO_TYPE':
                    if isinstance(b.value, ast.Call) and isinstance(b.value.func, ast.Name):
                        ENUMS.add(n.name[:-5])
    classes = {}
    for d in ('nova/objects', 'nova/notifications/objects'):
        for path in sorted((root / d).glob('*.py')):
            tree = ast.parse(path.read_text())
            for n in tree.body:
                if not isinstance(n, ast.ClassDef):
                    continue
                info = {'bases': [], 'version': None, 'fields': None,
                        'module': f'{d}/{path.name}', 'registered': False}
                for b in n.bases:
                    info['bases'].append(b.attr if isinstance(b, ast.Attribute) else getattr(b, 'id', '?'))
                for dec in n.decorator_list:
                    txt = ast.unparse(dec)
                    if 'register' in txt and 'register_if(False)' not in txt:
                        info['registered'] = True
                for b in n.body:
                    if isinstance(b, ast.Assign) and isinstance(b.targets[0], ast.Name):
                        t = b.targets[0].id
                        if t == 'VERSION' and isinstance(b.value, ast.Constant):
                            info['version'] = b.value.value
                        elif t == 'fields':
                            info['fields'] = dict_fields(b.value)
                key = n.name
                if key in classes and classes[key]['registered'] and not info['registered']:
                    continue
                classes[key] = info

    # Bases defined in oslo.versionedobjects rather than in nova.
    ts = {'kind': 'datetime', 'nullable': True}
    classes['NovaTimestampObject'] = {
        'bases': [], 'version': None, 'module': 'oslo_versionedobjects/base.py',
        'registered': False, 'fields': [('created_at', ts), ('updated_at', ts)]}

    def version_of(name, seen=()):
        c = classes.get(name)
        if c is None or name in seen:
            return None
        if c['version']:
            return c['version']
        for b in c['bases']:
            v = version_of(b, seen + (name,))
            if v:
                return v
        return None

    def merged(name, seen):
        c = classes.get(name)
        if c is None or name in seen:
            return []
        seen.add(name)
        out = list(c['fields'] or [])
        for b in c['bases']:
            for f in merged(b, seen):
                if f[0] not in [x[0] for x in out]:
                    out.append(f)
        return out

    reg = {}
    for name, c in sorted(classes.items()):
        version = version_of(name)
        if not version or not c['registered']:
            continue
        fields = merged(name, set())
        reg[name] = {'version': version, 'module': c['module'],
                     'fields': [dict(name=k, **v) for k, v in fields]}
    json.dump(reg, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == '__main__':
    main()
