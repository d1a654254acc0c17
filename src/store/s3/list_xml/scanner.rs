//! The XML cursor under [`super::parse`]: tags, leaf text with entities replaced, and skipping
//! elements the reader does not want.
//!
//! It takes only what S3's `ListBucketResult` answers hold and declines ([`Declined`]) anything
//! else, so that the SDK's decoder reads it: comments, CDATA, DOCTYPE and processing
//! instructions, namespace prefixes, attribute values holding `>`, mixed content, unknown
//! entities.

use std::borrow::Cow;

use super::{Declined, Res};

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Tok<'a> {
    Open(&'a str),
    /// `<name/>`
    Empty(&'a str),
    Close(&'a str),
    End,
}

/// A cursor over the document: tags and the text between them.
pub(super) struct Scanner<'a> {
    pub(super) s: &'a str,
    pub(super) pos: usize,
}

impl<'a> Scanner<'a> {
    /// Skips a byte-order mark, the `<?xml …?>` declaration and whitespace.
    pub(super) fn skip_prolog(&mut self) -> Res<()> {
        let rest = &self.s[self.pos..];
        let rest = rest.strip_prefix('\u{feff}').unwrap_or(rest);
        let rest = rest.trim_start();
        self.pos = self.s.len() - rest.len();
        if rest.starts_with("<?xml") {
            let end = rest.find("?>").ok_or(Declined("declaration"))?;
            self.pos += end + 2;
        }
        Ok(())
    }

    /// The next tag, skipping the whitespace before it. Text other than whitespace between
    /// tags that are not a leaf's is not expected in this document.
    pub(super) fn next(&mut self) -> Res<Tok<'a>> {
        let Some(text) = self.text_to_tag() else {
            return if self.s[self.pos..].trim().is_empty() {
                self.pos = self.s.len();
                Ok(Tok::End)
            } else {
                Err(Declined("text outside elements"))
            };
        };
        if !text.trim().is_empty() {
            return Err(Declined("mixed content"));
        }
        self.tag()
    }

    /// The text up to the next `<`, which `pos` then points at; `None` (and `pos` unmoved) if no
    /// tag follows.
    fn text_to_tag(&mut self) -> Option<&'a str> {
        let lt = memchr::memchr(b'<', &self.s.as_bytes()[self.pos..])? + self.pos;
        let text = &self.s[self.pos..lt];
        self.pos = lt;
        Some(text)
    }

    /// The tag at `pos` (which is at a `<`).
    fn tag(&mut self) -> Res<Tok<'a>> {
        let b = self.s.as_bytes();
        let start = self.pos + 1;
        let gt = memchr::memchr(b'>', &b[start..]).ok_or(Declined("open tag"))? + start;
        let inner = &self.s[start..gt];
        self.pos = gt + 1;
        if let Some(name) = inner.strip_prefix('/') {
            return Ok(Tok::Close(name.trim_end()));
        }
        // Comments, CDATA, DOCTYPE and processing instructions are left to the SDK's decoder,
        // and so are attribute values holding '>' or a quote mark (not in S3's answers).
        if inner.starts_with(['!', '?']) || inner.contains(['"', '\'']) && !plain_attributes(inner) {
            return Err(Declined("markup"));
        }
        let (inner, empty) = match inner.strip_suffix('/') {
            Some(i) => (i, true),
            None => (inner, false),
        };
        let name = inner.split([' ', '\t', '\r', '\n']).next().unwrap_or_default();
        if name.is_empty() || name.contains(':') {
            return Err(Declined("element name"));
        }
        Ok(if empty { Tok::Empty(name) } else { Tok::Open(name) })
    }

    /// The next child element of the current one, as the name of its (now read) opening tag;
    /// `None` at the current element's closing tag. An empty child `<x/>` is skipped.
    pub(super) fn child(&mut self) -> Res<Option<&'a str>> {
        loop {
            match self.next()? {
                Tok::Open(name) => return Ok(Some(name)),
                Tok::Empty(_) => continue,
                Tok::Close(_) => return Ok(None),
                Tok::End => return Err(Declined("unbalanced")),
            }
        }
    }

    /// The text of the leaf element `name`, whose opening tag was just read, with entities
    /// replaced; reads its closing tag.
    pub(super) fn leaf(&mut self, name: &str) -> Res<Cow<'a, str>> {
        let raw = self.text_to_tag().ok_or(Declined("leaf"))?;
        match self.tag()? {
            Tok::Close(n) if n == name => unescape(raw),
            _ => Err(Declined("leaf with children")),
        }
    }

    /// Skips the rest of element `name`, whose opening tag was just read, with its children.
    pub(super) fn skip(&mut self, name: &str) -> Res<()> {
        let mut depth = 1usize;
        while depth > 0 {
            self.text_to_tag().ok_or(Declined("unclosed"))?;
            match self.tag()? {
                Tok::Open(_) => depth += 1,
                Tok::Close(n) => {
                    depth -= 1;
                    if depth == 0 && n != name {
                        return Err(Declined("unbalanced"));
                    }
                }
                // `tag` never gives `End`.
                Tok::Empty(_) | Tok::End => {}
            }
        }
        Ok(())
    }
}

/// Whether the attributes in a tag's text are simple `name="value"` pairs with no `>` inside
/// (the scanner found the tag's end at the first `>`, which a quoted value could contain).
fn plain_attributes(inner: &str) -> bool {
    inner.matches(['"', '\'']).count().is_multiple_of(2)
}

/// Replaces XML's five named entities and character references.
pub(super) fn unescape(raw: &str) -> Res<Cow<'_, str>> {
    if !raw.contains('&') {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let semi = rest[amp..].find(';').ok_or(Declined("entity"))? + amp;
        let entity = &rest[amp + 1..semi];
        let c = match entity {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = entity.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = entity.strip_prefix('#') {
                    dec.parse::<u32>().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32).ok_or(Declined("entity"))?
            }
        };
        out.push(c);
        rest = &rest[semi + 1..];
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}
