//! The Rust registry table, registry.json (extracted from nova 34.0.0's
//! sources) and the per-object JSON Schemas describe the same objects.

use std::path::PathBuf;

use novakvm::objects::registry::{self, FieldKind};
use serde_json::Value;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("api-schemas/nova-objects")
}

fn kind_name(k: FieldKind) -> (String, Option<&'static str>) {
    let name = match k {
        FieldKind::Object(o) => return ("object".into(), Some(o)),
        FieldKind::ListOfObjects(o) => return ("list_of_objects".into(), Some(o)),
        other => format!("{other:?}"),
    };
    // CamelCase -> snake_case, as in registry.json.
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    // FieldKind::DateTime is `datetime` in registry.json.
    (out.replace("date_time", "datetime"), None)
}

#[test]
fn rust_table_matches_registry_json_and_schemas() {
    let reg: Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("registry.json")).unwrap())
            .unwrap();
    let reg = reg.as_object().unwrap();
    assert_eq!(reg.len(), registry::all().len());
    for def in registry::all() {
        let j = &reg[def.name];
        assert_eq!(j["version"], def.version().to_string(), "{}", def.name);
        let fields = j["fields"].as_array().unwrap();
        assert_eq!(fields.len(), def.fields.len(), "{}", def.name);
        for (jf, f) in fields.iter().zip(def.fields) {
            assert_eq!(jf["name"], f.name);
            assert_eq!(jf["nullable"], f.nullable, "{}.{}", def.name, f.name);
            let (kind, obj) = kind_name(f.kind);
            assert_eq!(jf["kind"], kind.as_str(), "{}.{}", def.name, f.name);
            if let Some(o) = obj {
                assert_eq!(jf["object"], o);
                assert!(
                    registry::lookup(o).is_some(),
                    "{}.{} -> {o}",
                    def.name,
                    f.name
                );
            }
        }
        let schema: Value = serde_json::from_str(
            &std::fs::read_to_string(dir().join(format!("objects/{}.json", def.name))).unwrap(),
        )
        .unwrap();
        assert_eq!(schema["properties"]["nova_object.name"]["const"], def.name);
        let props = schema["properties"]["nova_object.data"]["properties"]
            .as_object()
            .unwrap();
        assert_eq!(props.len(), def.fields.len(), "{}", def.name);
    }
}
