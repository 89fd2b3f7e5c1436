;; word-count: a Caxton WASM tool (ABI v1; docs/wasm-abi.md, "WASM tools").
;; A config agent's model calls it with the arguments {"text": "..."}; they arrive
;; as the envelope's "content", and the reply {"words": N} is the call's result
;; (N: the runs of characters between spaces, tabs and line breaks of text).
;; Build: python -c "import wasmtime,sys; sys.stdout.buffer.write(wasmtime.wat2wasm(open('word-count.wat').read()))" > word-count.wasm
(module
  (memory (export "memory") 1)
  (data (i32.const 0) "\"text\":\"")                       ;; the 8 bytes of the key searched for
  (data (i32.const 16) "{\"words\":")                      ;; 9 bytes
  (data (i32.const 32) "{\"error\":\"no text argument\"}")  ;; 28 bytes
  (global $heap_base i32 (i32.const 4096))

  ;; One message at a time: hand out the heap from its base, growing memory so that
  ;; the message and the reply (len + 64 bytes) fit. 0 = out of memory.
  (func (export "caxton_alloc") (param $len i32) (result i32)
    (local $need i32) (local $have i32)
    (local.set $need (i32.add (global.get $heap_base) (i32.add (local.get $len) (i32.const 64))))
    (local.set $have (i32.mul (memory.size) (i32.const 65536)))
    (if (i32.gt_u (local.get $need) (local.get $have))
      (then
        (if (i32.eq
              (memory.grow (i32.div_u (i32.add (i32.sub (local.get $need) (local.get $have)) (i32.const 65535))
                                      (i32.const 65536)))
              (i32.const -1))
          (then (return (i32.const 0))))))
    (global.get $heap_base))

  ;; The first address in [p, end) where the 8 key bytes start; -1 if none.
  (func $find (param $p i32) (param $end i32) (result i32)
    (block $none
      (loop $scan
        (br_if $none (i32.gt_u (i32.add (local.get $p) (i32.const 8)) (local.get $end)))
        (if (i64.eq (i64.load (local.get $p)) (i64.load (i32.const 0)))
          (then (return (local.get $p))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $scan)))
    (i32.const -1))

  ;; Words of the JSON string body at p (up to its closing quote): an escaped \n \t \r is a break.
  (func $count (param $p i32) (param $end i32) (result i32)
    (local $c i32) (local $words i32) (local $inside i32) (local $space i32)
    (block $done
      (loop $scan
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $c (i32.load8_u (local.get $p)))
        (br_if $done (i32.eq (local.get $c) (i32.const 34)))
        (local.set $space (i32.eq (local.get $c) (i32.const 32)))
        (if (i32.eq (local.get $c) (i32.const 92))
          (then
            (local.set $p (i32.add (local.get $p) (i32.const 1)))
            (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
            (local.set $c (i32.load8_u (local.get $p)))
            (local.set $space (i32.or (i32.eq (local.get $c) (i32.const 110))
                                      (i32.or (i32.eq (local.get $c) (i32.const 116))
                                              (i32.eq (local.get $c) (i32.const 114)))))))
        (if (local.get $space)
          (then (local.set $inside (i32.const 0)))
          (else
            (if (i32.eqz (local.get $inside))
              (then (local.set $words (i32.add (local.get $words) (i32.const 1)))
                    (local.set $inside (i32.const 1))))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $scan)))
    (local.get $words))

  ;; Write n in decimal at out; return the number of bytes written.
  (func $utoa (param $n i32) (param $out i32) (result i32)
    (local $len i32) (local $tmp i32) (local $i i32)
    (local.set $tmp (local.get $n))
    (local.set $len (i32.const 1))
    (block $done
      (loop $digits
        (br_if $done (i32.lt_u (local.get $tmp) (i32.const 10)))
        (local.set $tmp (i32.div_u (local.get $tmp) (i32.const 10)))
        (local.set $len (i32.add (local.get $len) (i32.const 1)))
        (br $digits)))
    (local.set $i (local.get $len))
    (loop $write
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (i32.store8 (i32.add (local.get $out) (local.get $i))
                  (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
      (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
      (br_if $write (i32.gt_u (local.get $i) (i32.const 0))))
    (local.get $len))

  ;; Handle the JSON envelope at [ptr, ptr+len); return (reply_ptr << 32) | reply_len.
  (func (export "caxton_handle") (param $ptr i32) (param $len i32) (result i64)
    (local $end i32) (local $at i32) (local $out i32) (local $n i32)
    (local.set $end (i32.add (local.get $ptr) (local.get $len)))
    (local.set $at (call $find (local.get $ptr) (local.get $end)))
    (if (i32.eq (local.get $at) (i32.const -1))
      (then (return (i64.or (i64.shl (i64.const 32) (i64.const 32)) (i64.const 28)))))
    (local.set $out (local.get $end))
    (memory.copy (local.get $out) (i32.const 16) (i32.const 9))
    (local.set $n (call $utoa (call $count (i32.add (local.get $at) (i32.const 8)) (local.get $end))
                              (i32.add (local.get $out) (i32.const 9))))
    (i32.store8 (i32.add (local.get $out) (i32.add (i32.const 9) (local.get $n))) (i32.const 125))
    (i64.or (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32))
            (i64.extend_i32_u (i32.add (i32.const 10) (local.get $n))))))
