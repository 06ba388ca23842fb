//! The wire writer against prost-reflect, on generated messages of `tests/fixtures/kinds.proto`:
//! canonical encodings, and the non-canonical ones a backend may send (fields out of order,
//! a scalar sent twice, oneof members in turn, lists split and unpacked, unknown fields).

use proptest::prelude::*;
use prost::Message as _;
use prost_reflect::{
    DescriptorPool, DynamicMessage, Kind, MapKey, MessageDescriptor, ReflectMessage,
    SerializeOptions, Value as Reflected,
};

use super::{Fallback, Options, PlansBuilder, write};
use crate::transcode::{Output, ResponseError, to_json, wire_to_json};

/// Compiled once for all cases.
fn pool() -> DescriptorPool {
    static POOL: std::sync::OnceLock<DescriptorPool> = std::sync::OnceLock::new();
    POOL.get_or_init(compile).clone()
}

fn compile() -> DescriptorPool {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut compiler = match protox::Compiler::new([manifest.join("tests/fixtures")]) {
        Ok(c) => c,
        Err(e) => panic!("protox: {e}"),
    };
    compiler.include_imports(true);
    if let Err(e) = compiler.open_file("kinds.proto") {
        panic!("compiling kinds.proto: {e}");
    }
    match DescriptorPool::decode(compiler.encode_file_descriptor_set().as_slice()) {
        Ok(pool) => pool,
        Err(e) => panic!("decoding kinds.proto: {e}"),
    }
}

fn message(pool: &DescriptorPool, name: &str) -> MessageDescriptor {
    match pool.get_message_by_name(name) {
        Some(m) => m,
        None => panic!("{name} is in kinds.proto"),
    }
}

/// A small deterministic generator, seeded by proptest.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const TEXTS: &[&str] = &[
    "",
    "plain",
    "quote \" and \\ backslash",
    "\u{0}\u{1f}\n\t\r\u{8}\u{c}",
    "é 😀 \u{2028} </script>",
    "a longer text that is well over eight bytes and has nothing to escape",
];

/// What a generated message holds that changes how it can be compared.
#[derive(Default)]
struct Drawn {
    /// A map with two entries or more: prost-reflect's key order is a hash map's.
    unordered: bool,
    /// A `Struct`: left to prost-reflect.
    unsupported: bool,
}

fn scalar(kind: &Kind, rng: &mut Rng) -> Reflected {
    let pick = rng.below(4);
    match kind {
        Kind::Double => Reflected::F64(
            [
                0.0,
                -0.0,
                1.5,
                f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
                1e300,
                5e-324,
            ][rng.below(8) as usize],
        ),
        Kind::Float => Reflected::F32(
            [
                0.0,
                -0.0,
                0.1,
                f32::NAN,
                f32::INFINITY,
                f32::MAX,
                f32::MIN_POSITIVE,
                3.0,
            ][rng.below(8) as usize],
        ),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Reflected::I32(
            [0, -1, i32::MIN, i32::MAX][pick as usize].wrapping_add(rng.below(3) as i32),
        ),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Reflected::I64(
            [0, -1, i64::MIN, i64::MAX][pick as usize].wrapping_add(rng.below(3) as i64),
        ),
        Kind::Uint32 | Kind::Fixed32 => {
            Reflected::U32([0, 1, u32::MAX, 300][pick as usize].wrapping_add(rng.below(3) as u32))
        }
        Kind::Uint64 | Kind::Fixed64 => {
            Reflected::U64([0, 1, u64::MAX, 1 << 40][pick as usize].wrapping_add(rng.below(3)))
        }
        Kind::Bool => Reflected::Bool(rng.chance(50)),
        Kind::String => Reflected::String(TEXTS[rng.below(TEXTS.len() as u64) as usize].to_owned()),
        Kind::Bytes => {
            let len = rng.below(7) as usize;
            Reflected::Bytes(
                (0..len)
                    .map(|_| rng.next() as u8)
                    .collect::<Vec<_>>()
                    .into(),
            )
        }
        // Names, numbers no name has, and negative ones (open enums keep them).
        Kind::Enum(_) => Reflected::EnumNumber([0, 1, 2, 7, -3][rng.below(5) as usize]),
        Kind::Message(_) => Reflected::Bool(false),
    }
}

fn map_key(kind: &Kind, rng: &mut Rng) -> MapKey {
    match scalar(kind, rng) {
        Reflected::Bool(b) => MapKey::Bool(b),
        Reflected::I32(v) => MapKey::I32(v),
        Reflected::I64(v) => MapKey::I64(v),
        Reflected::U32(v) => MapKey::U32(v),
        Reflected::U64(v) => MapKey::U64(v),
        Reflected::String(s) => MapKey::String(s),
        _ => MapKey::Bool(false),
    }
}

fn value(kind: &Kind, rng: &mut Rng, depth: usize, drawn: &mut Drawn) -> Option<Reflected> {
    match kind {
        Kind::Message(m) => {
            if m.full_name() == "google.protobuf.Timestamp" {
                let mut t = DynamicMessage::new(m.clone());
                t.set_field_by_name(
                    "seconds",
                    Reflected::I64([0, 1_700_000_000, -1][rng.below(3) as usize]),
                );
                t.set_field_by_name(
                    "nanos",
                    Reflected::I32([0, 5_000_000, 123_456, 1][rng.below(4) as usize]),
                );
                return Some(Reflected::Message(t));
            }
            if m.full_name() == "google.protobuf.Duration" {
                let mut d = DynamicMessage::new(m.clone());
                let seconds = [0, 3, -3, 315_576_000_000][rng.below(4) as usize];
                d.set_field_by_name("seconds", Reflected::I64(seconds));
                let nanos = [0, 500_000_000, 1_000][rng.below(3) as usize];
                d.set_field_by_name(
                    "nanos",
                    Reflected::I32(if seconds < 0 { -nanos } else { nanos }),
                );
                return Some(Reflected::Message(d));
            }
            if m.full_name() == "google.protobuf.Struct" {
                drawn.unsupported = true;
                let mut s = DynamicMessage::new(m.clone());
                let parsed = serde_json::json!({"k": [1.5, "x", null]});
                s = match DynamicMessage::deserialize(m.clone(), parsed) {
                    Ok(v) => v,
                    Err(_) => s,
                };
                return Some(Reflected::Message(s));
            }
            if depth >= 3 {
                return None;
            }
            Some(Reflected::Message(generate(m, rng, depth + 1, drawn)))
        }
        other => Some(scalar(other, rng)),
    }
}

fn generate(
    desc: &MessageDescriptor,
    rng: &mut Rng,
    depth: usize,
    drawn: &mut Drawn,
) -> DynamicMessage {
    let mut message = DynamicMessage::new(desc.clone());
    for field in desc.fields() {
        if !rng.chance(55) {
            continue;
        }
        if field.is_map() {
            let Kind::Message(entry) = field.kind() else {
                continue;
            };
            let key_kind = entry.map_entry_key_field().kind();
            let value_kind = entry.map_entry_value_field().kind();
            let mut map = std::collections::HashMap::new();
            for _ in 0..rng.below(4) {
                if let Some(v) = value(&value_kind, rng, depth, drawn) {
                    map.insert(map_key(&key_kind, rng), v);
                }
            }
            drawn.unordered |= map.len() > 1;
            message.set_field(&field, Reflected::Map(map));
        } else if field.is_list() {
            let items: Vec<Reflected> = (0..rng.below(4))
                .filter_map(|_| value(&field.kind(), rng, depth, drawn))
                .collect();
            message.set_field(&field, Reflected::List(items));
        } else if let Some(v) = value(&field.kind(), rng, depth, drawn) {
            message.set_field(&field, v);
        }
    }
    message
}

/// The same message as a backend might send it: each field on its own, in shuffled order,
/// packable lists unpacked and split, stale earlier values for scalars and oneofs, and
/// unknown fields between.
fn scrambled(message: &DynamicMessage, unpacked: &MessageDescriptor, rng: &mut Rng) -> Vec<u8> {
    let desc = message.descriptor();
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    for (field, value) in message.fields() {
        let mut alone = DynamicMessage::new(desc.clone());
        alone.set_field(&field, value.clone());
        let bytes = alone.encode_to_vec();
        let unpackable = unpacked.get_field(field.number()).is_some();
        if unpackable && rng.chance(50) {
            // Split into one chunk per element, each unpacked.
            if let Reflected::List(items) = value {
                for item in items {
                    let mut one = DynamicMessage::new(unpacked.clone());
                    if let Some(f) = unpacked.get_field(field.number()) {
                        one.set_field(&f, Reflected::List(vec![item.clone()]));
                    }
                    chunks.push(one.encode_to_vec());
                }
                continue;
            }
        }
        chunks.push(bytes);
    }
    // Shuffle (Fisher-Yates), then put stale values first: the later ones must win.
    for i in (1..chunks.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        chunks.swap(i, j);
    }
    let mut stale = DynamicMessage::new(desc);
    stale.set_field_by_name("number", Reflected::I32(41));
    stale.set_field_by_name("json_named", Reflected::String("stale".into()));
    stale.set_field_by_name("far_away", Reflected::I32(-9));
    let mut out = stale.encode_to_vec();
    // Unknown fields of every wire type: 900 varint, 901 fixed64, 902 bytes, 903 fixed32.
    out.extend_from_slice(&[0xa0, 0x38, 0x96, 0x01]);
    out.extend_from_slice(&[0xa9, 0x38, 1, 2, 3, 4, 5, 6, 7, 8]);
    out.extend_from_slice(&[0xb2, 0x38, 2, b'h', b'i']);
    for chunk in chunks {
        out.extend_from_slice(&chunk);
    }
    out.extend_from_slice(&[0xbd, 0x38, 9, 9, 9, 9]);
    out
}

fn all_options() -> Vec<(Options, SerializeOptions)> {
    let mut all = Vec::new();
    for bits in 0..16u8 {
        let wire = Options {
            proto_names: bits & 1 != 0,
            emit_defaults: bits & 2 != 0,
            enum_numbers: bits & 4 != 0,
            stringify_64: bits & 8 != 0,
        };
        let reflect = SerializeOptions::new()
            .use_proto_field_name(wire.proto_names)
            .skip_default_fields(!wire.emit_defaults)
            .use_enum_numbers(wire.enum_numbers)
            .stringify_64_bit_integers(wire.stringify_64);
        all.push((wire, reflect));
    }
    all
}

/// Ours, the fast path alone, and prost-reflect's, for `bytes`.
fn compare(desc: &MessageDescriptor, bytes: &[u8], drawn: &Drawn) -> Result<(), TestCaseError> {
    let mut builder = PlansBuilder::default();
    let root = builder.add(desc);
    let plan = builder.finish().plan(root);
    let decoded = match DynamicMessage::decode(desc.clone(), bytes) {
        Ok(m) => m,
        Err(e) => {
            return Err(TestCaseError::fail(format!(
                "the generated bytes decode: {e}"
            )));
        }
    };
    for (wire, reflect) in all_options() {
        let theirs = to_json(&decoded, None, &reflect);
        let output = Output {
            descriptor: desc,
            plan: &plan,
            response_body: None,
            wire: &wire,
            reflect: &reflect,
        };
        let ours = wire_to_json(bytes, &output);
        let mut fast = Vec::new();
        let fast = write(&plan, bytes, &wire, &mut fast).map(|()| fast);
        match (&theirs, &ours) {
            (Ok(theirs), Ok(ours)) => {
                if drawn.unordered {
                    let a: serde_json::Value = serde_json::from_slice(theirs).unwrap_or_default();
                    let b: serde_json::Value = serde_json::from_slice(ours).unwrap_or_default();
                    prop_assert_eq!(a, b, "{:?}", wire);
                } else {
                    prop_assert_eq!(
                        String::from_utf8_lossy(theirs),
                        String::from_utf8_lossy(ours),
                        "{:?}",
                        wire
                    );
                }
            }
            // A value JSON cannot hold fails both ways.
            (Err(_), Err(ResponseError::Serialize { .. })) => {}
            (theirs, ours) => prop_assert!(false, "theirs {theirs:?}, ours {ours:?}, {wire:?}"),
        }
        // The fast path is what answers whenever the message has nothing it leaves out.
        if !drawn.unsupported && theirs.is_ok() {
            prop_assert!(fast.is_ok(), "fell back on {:?}", decoded);
        }
        // A rule's `response_body`: one message field, a list of them, a oneof member.
        for name in [
            "scalars",
            "many",
            "nested",
            "child",
            "children",
            "by_id",
            "json_named",
        ] {
            let Some(field) = desc.get_field_by_name(name) else {
                return Err(TestCaseError::fail(format!("no field {name}")));
            };
            let theirs = to_json(&decoded, Some(&field), &reflect);
            let output = Output {
                response_body: Some(&field),
                ..output
            };
            let ours = wire_to_json(bytes, &output);
            match (&theirs, &ours) {
                (Ok(theirs), Ok(ours)) => {
                    let a: serde_json::Value = serde_json::from_slice(theirs).unwrap_or_default();
                    let b: serde_json::Value = serde_json::from_slice(ours).unwrap_or_default();
                    prop_assert_eq!(a, b, "response_body {} {:?}", name, wire);
                }
                (Err(_), Err(ResponseError::Serialize { .. })) => {}
                (theirs, ours) => {
                    prop_assert!(false, "{name}: theirs {theirs:?}, ours {ours:?}, {wire:?}");
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 100, ..ProptestConfig::default() })]

    #[test]
    fn canonical_encodings_are_written_as_prost_reflect_writes_them(seed in any::<u64>()) {
        let pool = pool();
        let desc = message(&pool, "kinds.v1.Everything");
        let mut rng = Rng(seed | 1);
        let mut drawn = Drawn::default();
        let generated = generate(&desc, &mut rng, 0, &mut drawn);
        compare(&desc, &generated.encode_to_vec(), &drawn)?;
    }

    #[test]
    fn scrambled_encodings_are_read_as_prost_reflect_reads_them(seed in any::<u64>()) {
        let pool = pool();
        let desc = message(&pool, "kinds.v1.Everything");
        let unpacked = message(&pool, "kinds.v1.Unpacked");
        let mut rng = Rng(seed | 1);
        let mut drawn = Drawn::default();
        let generated = generate(&desc, &mut rng, 0, &mut drawn);
        compare(&desc, &scrambled(&generated, &unpacked, &mut rng), &drawn)?;
    }
}

fn plan_of(desc: &MessageDescriptor) -> super::Plan {
    let mut builder = PlansBuilder::default();
    let root = builder.add(desc);
    builder.finish().plan(root)
}

const DEFAULTS: Options = Options {
    proto_names: true,
    emit_defaults: false,
    enum_numbers: false,
    stringify_64: true,
};

#[test]
fn a_singular_message_sent_twice_is_merged_by_the_slow_path() {
    let pool = pool();
    let desc = message(&pool, "kinds.v1.Everything");
    // scalars { i32: 1 } then scalars { s: "x" }: merged, both set.
    let bytes = [0x0a, 0x02, 0x18, 0x01, 0x0a, 0x03, 0x72, 0x01, b'x'];
    let plan = plan_of(&desc);
    assert_eq!(
        write(&plan, &bytes, &DEFAULTS, &mut Vec::new()),
        Err(Fallback)
    );
    let reflect = SerializeOptions::new()
        .skip_default_fields(true)
        .use_proto_field_name(true);
    let output = Output {
        descriptor: &desc,
        plan: &plan,
        response_body: None,
        wire: &DEFAULTS,
        reflect: &reflect,
    };
    let json = wire_to_json(&bytes, &output)
        .ok()
        .map(|j| String::from_utf8_lossy(&j).into_owned());
    assert_eq!(json.as_deref(), Some(r#"{"scalars":{"i32":1,"s":"x"}}"#));
}

#[test]
fn malformed_bytes_are_a_decode_error_not_a_partial_answer() {
    let pool = pool();
    let desc = message(&pool, "kinds.v1.Everything");
    let plan = plan_of(&desc);
    let reflect = SerializeOptions::new();
    let output = Output {
        descriptor: &desc,
        plan: &plan,
        response_body: None,
        wire: &DEFAULTS,
        reflect: &reflect,
    };
    let cases: [&[u8]; 5] = [
        // A length past the end.
        &[0x72, 0x05, b'a'],
        // Field 14 (a string) as a varint.
        &[0x70, 0x01],
        // Invalid UTF-8 in scalars.s.
        &[0x0a, 0x03, 0x72, 0x01, 0xff],
        // A varint that never ends.
        &[
            0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ],
        // A group start.
        &[0x0b],
    ];
    for bytes in cases {
        let result = wire_to_json(bytes, &output);
        assert!(
            matches!(result, Err(ResponseError::Decode { .. })),
            "{bytes:?}: {result:?}"
        );
    }
}

#[test]
fn nesting_past_the_limit_falls_back_without_overflowing() {
    let pool = pool();
    let desc = message(&pool, "kinds.v1.Everything");
    // child { child { ... } } 200 deep, built from the inside out.
    let mut bytes: Vec<u8> = Vec::new();
    for _ in 0..200 {
        let mut outer = vec![0x82, 0x02];
        prost::encoding::encode_varint(bytes.len() as u64, &mut outer);
        outer.extend_from_slice(&bytes);
        bytes = outer;
    }
    assert_eq!(
        write(&plan_of(&desc), &bytes, &DEFAULTS, &mut Vec::new()),
        Err(Fallback)
    );
}
