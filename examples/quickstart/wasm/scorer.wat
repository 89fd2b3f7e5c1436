;; scorer: a minimal Caxton WASM agent (ABI v1, see docs/wasm-abi.md).
;; Replies {"agent":"scorer","score":N} where N is the size in bytes of the
;; message envelope it received. Build: caxton wasm build scorer.wat (or any wat2wasm).
(module
  (import "caxton" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{\"agent\":\"scorer\",\"score\":")
  (data (i32.const 64) "scorer ready")
  (global $heap_base i32 (i32.const 4096))

  ;; Called once after instantiation.
  (func (export "caxton_init")
    (call $log (i32.const 1) (i32.const 64) (i32.const 12)))

  ;; One message at a time: hand out the heap from its base, growing memory
  ;; so that the message and the reply (len + 64 bytes) fit. 0 = out of memory.
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

  ;; Write n in decimal at out; return the number of bytes written.
  (func $utoa (param $n i32) (param $out i32) (result i32)
    (local $len i32) (local $tmp i32) (local $i i32)
    (local.set $tmp (local.get $n))
    (local.set $len (i32.const 1))
    (block $done
      (loop $count
        (br_if $done (i32.lt_u (local.get $tmp) (i32.const 10)))
        (local.set $tmp (i32.div_u (local.get $tmp) (i32.const 10)))
        (local.set $len (i32.add (local.get $len) (i32.const 1)))
        (br $count)))
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
    (local $out i32) (local $n i32)
    (local.set $out (i32.add (local.get $ptr) (local.get $len)))
    (memory.copy (local.get $out) (i32.const 0) (i32.const 26))
    (local.set $n (call $utoa (local.get $len) (i32.add (local.get $out) (i32.const 26))))
    (i32.store8 (i32.add (local.get $out) (i32.add (i32.const 26) (local.get $n))) (i32.const 125))
    (i64.or (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32))
            (i64.extend_i32_u (i32.add (i32.const 27) (local.get $n))))))
