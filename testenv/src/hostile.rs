//! Hostile components, generated: valid WebAssembly that is costly to
//! compile, for the tests of the compile cage.
//!
//! The shape is one that Cranelift handles worst for its size: each
//! function pushes `values` constants onto the operand stack, then adds
//! them up. Every pushed value stays live until the additions consume
//! it, so register allocation works on `values` live values at once and
//! spills most of them; time and memory grow much faster than the bytes
//! (about seven bytes per value). The component holds one core module with
//! `functions` such functions and nothing else: it is valid, it compiles
//! (given time and memory), and it does not implement the bosun world.
//!
//! Encoded by hand (a few LEB128 numbers) so that the tests need no
//! WebAssembly encoder of their own.

/// A component whose core module has `functions` functions of `values`
/// live values each (see the module's notes). `salt` changes the bytes
/// (and so the digest) without changing the cost.
pub fn component(functions: u32, values: u32, salt: u32) -> Vec<u8> {
    let module = core_module(functions, values, salt);
    let mut out = b"\0asm\x0d\x00\x01\x00".to_vec();
    // Section 1 of a component: a core module, whole.
    section(&mut out, 1, &module);
    out
}

fn core_module(functions: u32, values: u32, salt: u32) -> Vec<u8> {
    let mut out = b"\0asm\x01\x00\x00\x00".to_vec();
    // One type: (i32) -> i32.
    section(&mut out, 1, &[0x01, 0x60, 0x01, 0x7f, 0x01, 0x7f]);
    let mut funcs = Vec::new();
    leb(&mut funcs, functions);
    funcs.extend(std::iter::repeat_n(0, functions as usize));
    section(&mut out, 3, &funcs);

    let mut body = vec![0x00]; // no locals
    for i in 0..values {
        // x ^ i: a value of its own (no two are equal, so none is shared),
        // cheap to encode, and nothing Cranelift folds away.
        body.extend_from_slice(&[0x20, 0x00]); // local.get 0
        body.push(0x41); // i32.const
        sleb(&mut body, i64::from(i ^ salt));
        body.push(0x73); // i32.xor
    }
    body.extend(std::iter::repeat_n(0x6a, values.saturating_sub(1) as usize)); // i32.add
    body.push(0x0b); // end
    let mut code = Vec::new();
    leb(&mut code, functions);
    for _ in 0..functions {
        leb(&mut code, body.len() as u32);
        code.extend_from_slice(&body);
    }
    section(&mut out, 10, &code);
    // A custom section carrying the salt: other bytes, same code.
    let mut custom = vec![4, b's', b'a', b'l', b't'];
    custom.extend_from_slice(&salt.to_le_bytes());
    section(&mut out, 0, &custom);
    out
}

fn section(out: &mut Vec<u8>, id: u8, contents: &[u8]) {
    out.push(id);
    leb(out, contents.len() as u32);
    out.extend_from_slice(contents);
}

fn leb(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn sleb(out: &mut Vec<u8>, mut value: i64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        let done = (value == 0 && byte & 0x40 == 0) || (value == -1 && byte & 0x40 != 0);
        if done {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_salt_changes_the_bytes_not_the_size() {
        let (a, b) = (super::component(2, 100, 1), super::component(2, 100, 2));
        assert_ne!(a, b);
        assert_eq!(a.len(), b.len());
        assert!(a.starts_with(b"\0asm\x0d\x00\x01\x00"));
    }
}
