//! A small block-style YAML writer for rendered objects: a `serde::Serializer` that
//! writes straight into a `String`.
//!
//! Why not `serde_yaml` for output: it spent ~75 µs of the ~100 µs it took to render one
//! SafeApp (BENCHMARKS.md), most of it in its general-purpose emitter, and going through
//! `serde_json::Value` first still cost ~15 µs of allocations. Rendered objects are plain
//! trees of maps, lists, strings, numbers and booleans, so a writer that knows only those
//! is enough. It is conservative: a string is written plain only when no YAML 1.1 or 1.2
//! reader could take it for anything but that string (no number, boolean, null, date or
//! indicator look-alike); everything else is double-quoted with escapes. Tests parse
//! every output back and compare (including a property test over arbitrary trees).

use std::fmt::{Display, Write as _};

use serde::ser::{self, Serialize};

/// Why a value could not be written as YAML.
#[derive(Debug, thiserror::Error)]
#[error("cannot write YAML: {0}")]
pub struct Error(String);

impl ser::Error for Error {
    fn custom<T: Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

/// Appends `value` as one YAML document body (no `---`) to `out`.
pub fn write_document<T: Serialize + ?Sized>(out: &mut String, value: &T) -> Result<(), Error> {
    value.serialize(Writer {
        out,
        slot: Slot::Root,
    })
}

/// Where the value being written starts.
#[derive(Clone, Copy)]
enum Slot {
    /// The document itself: collections start at column 0.
    Root,
    /// After `key:` of a map entry at this indentation.
    AfterKey(usize),
    /// After `-` of a sequence item at this indentation.
    AfterDash(usize),
}

struct Writer<'a> {
    out: &'a mut String,
    slot: Slot,
}

fn indent(out: &mut String, n: usize) {
    const SPACES: &str = "                                                                ";
    let mut left = n;
    while left > 0 {
        let step = left.min(SPACES.len());
        out.push_str(&SPACES[..step]);
        left -= step;
    }
}

impl<'a> Writer<'a> {
    /// Writes a scalar already formatted as YAML.
    fn scalar(self, text: impl FnOnce(&mut String)) -> Result<(), Error> {
        if !matches!(self.slot, Slot::Root) {
            self.out.push(' ');
        }
        text(self.out);
        self.out.push('\n');
        Ok(())
    }

    fn display(self, v: impl Display) -> Result<(), Error> {
        self.scalar(|out| {
            // Writing to a String cannot fail.
            let _ = write!(out, "{v}");
        })
    }

    fn map(self) -> Compound<'a> {
        Compound {
            out: self.out,
            slot: self.slot,
            count: 0,
            seq: false,
        }
    }

    fn seq(self) -> Compound<'a> {
        Compound {
            out: self.out,
            slot: self.slot,
            count: 0,
            seq: true,
        }
    }
}

/// A map or sequence being written. Nothing is written until the first entry, so an
/// empty one becomes `{}`/`[]` whatever length its `Serialize` announced.
struct Compound<'a> {
    out: &'a mut String,
    slot: Slot,
    count: usize,
    seq: bool,
}

impl Compound<'_> {
    /// Indentation of this collection's entries.
    fn level(&self) -> usize {
        match (self.slot, self.seq) {
            (Slot::Root, _) => 0,
            (Slot::AfterKey(l), false) => l + 2,
            // A list under a key sits at the key's own indentation, as kubectl writes it.
            (Slot::AfterKey(l), true) => l,
            (Slot::AfterDash(l), _) => l + 2,
        }
    }

    /// Starts an entry: the line break or inline space, then indentation.
    fn begin_entry(&mut self) {
        let level = self.level();
        match (self.slot, self.count) {
            (Slot::AfterDash(_), 0) => self.out.push(' '),
            (Slot::AfterKey(_), 0) => {
                self.out.push('\n');
                indent(self.out, level);
            }
            _ => indent(self.out, level),
        }
        self.count += 1;
    }

    fn item<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.begin_entry();
        self.out.push('-');
        let level = self.level();
        value.serialize(Writer {
            out: self.out,
            slot: Slot::AfterDash(level),
        })
    }

    fn key(&mut self, key: &str) {
        self.begin_entry();
        write_string(self.out, key);
        self.out.push(':');
    }

    fn value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let level = self.level();
        value.serialize(Writer {
            out: self.out,
            slot: Slot::AfterKey(level),
        })
    }

    fn finish(self) -> Result<(), Error> {
        if self.count == 0 {
            if !matches!(self.slot, Slot::Root) {
                self.out.push(' ');
            }
            self.out.push_str(if self.seq { "[]\n" } else { "{}\n" });
        }
        Ok(())
    }
}

/// Serializes map keys: they must be strings (or scalars written as strings).
struct KeyWriter;

macro_rules! key_display {
    ($($method:ident: $ty:ty),*) => {
        $(fn $method(self, v: $ty) -> Result<String, Error> { Ok(v.to_string()) })*
    };
}

impl ser::Serializer for KeyWriter {
    type Ok = String;
    type Error = Error;
    type SerializeSeq = ser::Impossible<String, Error>;
    type SerializeTuple = ser::Impossible<String, Error>;
    type SerializeTupleStruct = ser::Impossible<String, Error>;
    type SerializeTupleVariant = ser::Impossible<String, Error>;
    type SerializeMap = ser::Impossible<String, Error>;
    type SerializeStruct = ser::Impossible<String, Error>;
    type SerializeStructVariant = ser::Impossible<String, Error>;

    key_display!(serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
        serialize_u64: u64, serialize_char: char, serialize_str: &str);

    fn serialize_f32(self, _: f32) -> Result<String, Error> {
        Err(Error("a map key is a float".into()))
    }
    fn serialize_f64(self, _: f64) -> Result<String, Error> {
        Err(Error("a map key is a float".into()))
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<String, Error> {
        Err(Error("a map key is bytes".into()))
    }
    fn serialize_none(self) -> Result<String, Error> {
        Err(Error("a map key is null".into()))
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<String, Error> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<String, Error> {
        Err(Error("a map key is null".into()))
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<String, Error> {
        Err(Error("a map key is a unit struct".into()))
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<String, Error> {
        Ok(variant.to_string())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<String, Error> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<String, Error> {
        Err(Error("a map key is an enum with data".into()))
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Err(Error("a map key is a list".into()))
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Error> {
        Err(Error("a map key is a tuple".into()))
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        Err(Error("a map key is a tuple".into()))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(Error("a map key is a tuple".into()))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(Error("a map key is a map".into()))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Error> {
        Err(Error("a map key is a struct".into()))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(Error("a map key is a struct".into()))
    }
}

/// Integers are written as they display.
macro_rules! display_scalar {
    ($($method:ident: $ty:ty),*) => {
        $(fn $method(self, v: $ty) -> Result<(), Error> { self.display(v) })*
    };
}

impl<'a> ser::Serializer for Writer<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.scalar(|out| out.push_str(if v { "true" } else { "false" }))
    }
    display_scalar!(serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
        serialize_u8: u8, serialize_u16: u16, serialize_u32: u32, serialize_u64: u64);
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.serialize_f64(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        if v.is_nan() {
            self.scalar(|out| out.push_str(".nan"))
        } else if v.is_infinite() {
            self.scalar(|out| out.push_str(if v > 0.0 { ".inf" } else { "-.inf" }))
        } else {
            // `{:?}` keeps a decimal point (1.0), so the value reads back as a float.
            self.scalar(|out| {
                let _ = write!(out, "{v:?}");
            })
        }
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        let mut buf = [0u8; 4];
        self.serialize_str(v.encode_utf8(&mut buf))
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.scalar(|out| write_string(out, v))
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), Error> {
        Err(Error("raw bytes have no YAML form here".into()))
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), Error> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.scalar(|out| out.push_str("null"))
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        let mut map = self.map();
        map.key(variant);
        map.value(v)?;
        map.finish()
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Compound<'a>, Error> {
        Ok(self.seq())
    }
    fn serialize_tuple(self, _: usize) -> Result<Compound<'a>, Error> {
        Ok(self.seq())
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Compound<'a>, Error> {
        Ok(self.seq())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Compound<'a>, Error> {
        Err(Error("tuple variants have no YAML form here".into()))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Compound<'a>, Error> {
        Ok(self.map())
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Compound<'a>, Error> {
        Ok(self.map())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Compound<'a>, Error> {
        Err(Error("struct variants have no YAML form here".into()))
    }
}

/// The list-like compounds: every element is a `- ` item.
macro_rules! list_compound {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for Compound<'_> {
            type Ok = ();
            type Error = Error;
            fn $method<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
                self.item(v)
            }
            fn end(self) -> Result<(), Error> {
                self.finish()
            }
        }
    )*};
}

list_compound!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        let text = key.serialize(KeyWriter)?;
        self.key(&text);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        self.value(v)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

/// The struct-like compounds: every field is a `name: value` entry.
macro_rules! struct_compound {
    ($($trait:ident),*) => {$(
        impl ser::$trait for Compound<'_> {
            type Ok = ();
            type Error = Error;
            fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, v: &T) -> Result<(), Error> {
                self.key(key);
                self.value(v)
            }
            fn end(self) -> Result<(), Error> {
                self.finish()
            }
        }
    )*};
}

struct_compound!(SerializeStruct, SerializeStructVariant);

fn write_string(out: &mut String, s: &str) {
    if is_plain_safe(s) {
        out.push_str(s);
    } else {
        write_quoted(out, s);
    }
}

/// True when `s` can be written unquoted and read back as the same string by any YAML
/// 1.1 or 1.2 reader.
fn is_plain_safe(s: &str) -> bool {
    let bytes = s.as_bytes();
    let Some(&first) = bytes.first() else {
        return false;
    };
    if !(first.is_ascii_alphanumeric() || first == b'/' || first == b'_') {
        return false;
    }
    if bytes[bytes.len() - 1] == b':' {
        return false;
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"_./-:@+=,%".contains(&b);
    if !bytes.iter().all(|&b| allowed(b)) {
        return false;
    }
    if first.is_ascii_digit() {
        // Numbers (hex included), dates, sexagesimals and `1_000` start with a digit and
        // use no letter beyond a-f, o, x; anything else with a digit first is quoted.
        let has_word_letter = bytes.iter().any(|&b| {
            b.is_ascii_alphabetic() && !matches!(b.to_ascii_lowercase(), b'a'..=b'f' | b'o' | b'x')
        });
        if !has_word_letter || bytes.contains(&b':') {
            return false;
        }
    }
    const WORDS: [&str; 11] = [
        "true", "false", "yes", "no", "on", "off", "y", "n", "null", "nan", "inf",
    ];
    s.len() > 5 || !WORDS.iter().any(|w| w.eq_ignore_ascii_case(s))
}

/// A double-quoted scalar: `"`, `\`, control characters and the characters YAML 1.1
/// treats as line breaks are escaped; other printable text is kept as is.
fn write_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20
                || (0x7f..=0xa0).contains(&(c as u32))
                || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') =>
            {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn roundtrip(v: &Value) {
        let mut out = String::new();
        write_document(&mut out, v).expect("write");
        let back: Value = serde_yaml_ng::from_str(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
        assert_eq!(&back, v, "YAML was:\n{out}");
    }

    // Look-alikes of numbers, booleans, nulls and dates stay strings.
    #[test]
    fn ambiguous_strings_are_quoted() {
        for s in [
            "4",
            "1.0",
            "1e3",
            "0x1F",
            "0o17",
            "1_000",
            "1:20",
            "2001-12-14",
            "true",
            "No",
            "on",
            "null",
            "~",
            "",
            " lead",
            "trail ",
            "a: b",
            "#x",
            "- x",
            "*a",
            "&a",
            "!t",
            "%d",
            "@x",
            "`x",
            "a#b",
            "x:",
            ".5",
            ".inf",
            "NaN",
            "'q'",
            "\"q\"",
            "{a}",
            "[a]",
            "|",
            ">",
            "multi\nline",
            "tab\there",
            "é",
            "\u{2028}",
            "\u{85}",
            "y",
            "<<",
        ] {
            roundtrip(&json!({ "k": s, s: [s] }));
        }
    }

    // Ordinary Kubernetes values stay readable (plain).
    #[test]
    fn common_values_are_plain() {
        let mut out = String::new();
        write_document(
            &mut out,
            &json!({"cpu": "100m", "memory": "512Mi", "app.kubernetes.io/name": "web",
                "image": "r.example.com/a/b:1.0.0", "url": "https://x.example.com/a"}),
        )
        .expect("write");
        assert!(!out.contains('"'), "{out}");
    }

    // Nested maps, lists of maps, lists of lists and empty collections round-trip.
    #[test]
    fn structures_roundtrip() {
        roundtrip(&json!({
            "a": {"b": {"c": 1, "d": [1, 2, {"e": "f", "g": [], "h": {}}]}},
            "l": [[1, [2, 3]], [], {}, null, true, -1.5, {"x": [{"y": 1}]}],
            "empty": {},
        }));
        roundtrip(&json!([{"a": 1}, [1]]));
        roundtrip(&json!("scalar"));
        roundtrip(&json!({}));
        roundtrip(&json!([]));
    }

    // Typed objects write the same YAML as their JSON tree.
    #[test]
    fn typed_and_tree_agree() {
        let svc = k8s_openapi::api::core::v1::Service::default();
        let mut a = String::new();
        let mut b = String::new();
        write_document(&mut a, &svc).expect("write");
        write_document(&mut b, &serde_json::to_value(&svc).expect("json")).expect("write");
        assert_eq!(a, b);
    }
}
