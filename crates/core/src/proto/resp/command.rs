//! Building commands: RESP arrays of bulk strings, and redis-cli's way of splitting a line
//! into arguments.

use alloc::vec::Vec;

use crate::error::FrameError;
use crate::proto::push_decimal;

/// Encodes a command as a RESP array of bulk strings, the form every Redis command takes
/// (binary-safe: arguments may hold CR LF, NUL, anything).
///
/// ```
/// use redial_core::proto::resp::cmd;
/// assert_eq!(cmd(["SET", "a", "+PONG"]), b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$5\r\n+PONG\r\n");
/// ```
pub fn cmd<I, A>(args: I) -> Vec<u8>
where
    I: IntoIterator<Item = A>,
    A: AsRef<[u8]>,
{
    let args: Vec<A> = args.into_iter().collect();
    let mut out =
        Vec::with_capacity(16 + args.iter().map(|a| a.as_ref().len() + 16).sum::<usize>());
    cmd_into(&mut out, &args);
    out
}

/// Appends the encoding of [`cmd`]`(args)` to `out`, without a buffer of its own.
pub(crate) fn cmd_into<A: AsRef<[u8]>>(out: &mut Vec<u8>, args: &[A]) {
    out.push(b'*');
    push_decimal(out, args.len() as u64);
    out.extend_from_slice(b"\r\n");
    for a in args {
        let a = a.as_ref();
        out.push(b'$');
        push_decimal(out, a.len() as u64);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Splits a line into arguments the way redis-cli does: blanks separate arguments;
/// `"double quotes"` allow `\n`, `\r`, `\t`, `\b`, `\a`, `\\`, `\"` and `\xHH`; `'single
/// quotes'` allow only `\'`. A closing quote must end the argument. Unbalanced quotes are an
/// error.
pub fn split_args(line: &[u8]) -> Result<Vec<Vec<u8>>, FrameError> {
    let bad = |reason| FrameError::Malformed { reason };
    let mut args = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= n {
            return Ok(args);
        }
        let mut arg = Vec::new();
        let mut quote: Option<u8> = None;
        loop {
            if i >= n {
                if quote.is_some() {
                    return Err(bad("unbalanced quotes"));
                }
                break;
            }
            let c = line[i];
            match quote {
                Some(b'"') => match c {
                    b'\\'
                        if i + 3 < n
                            && line[i + 1] == b'x'
                            && line[i + 2].is_ascii_hexdigit()
                            && line[i + 3].is_ascii_hexdigit() =>
                    {
                        let hex = |d: u8| (d as char).to_digit(16).unwrap_or(0) as u8;
                        arg.push(hex(line[i + 2]) * 16 + hex(line[i + 3]));
                        i += 3;
                    }
                    b'\\' if i + 1 < n => {
                        i += 1;
                        arg.push(match line[i] {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        });
                    }
                    b'"' => {
                        if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                            return Err(bad("closing quote must be followed by a space"));
                        }
                        i += 1;
                        break;
                    }
                    _ => arg.push(c),
                },
                Some(_) => match c {
                    b'\\' if i + 1 < n && line[i + 1] == b'\'' => {
                        i += 1;
                        arg.push(b'\'');
                    }
                    b'\'' => {
                        if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                            return Err(bad("closing quote must be followed by a space"));
                        }
                        i += 1;
                        break;
                    }
                    _ => arg.push(c),
                },
                None => match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0x0c | 0x0b => break,
                    b'"' | b'\'' if arg.is_empty() => quote = Some(c),
                    _ => arg.push(c),
                },
            }
            i += 1;
        }
        args.push(arg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn splits_like_redis_cli() {
        let got = split_args(br#"SET "a b" 'it\'s' "\x00\r\n" plain"#).unwrap();
        assert_eq!(
            got,
            vec![
                b"SET".to_vec(),
                b"a b".to_vec(),
                b"it's".to_vec(),
                b"\x00\r\n".to_vec(),
                b"plain".to_vec()
            ]
        );
        assert!(split_args(br#"GET "open"#).is_err());
        assert!(split_args(br#"GET "a"b"#).is_err());
        assert_eq!(split_args(b"   ").unwrap(), Vec::<Vec<u8>>::new());
        assert_eq!(split_args(br#""""#).unwrap(), vec![Vec::new()]);
    }
}
