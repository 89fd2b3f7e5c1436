;; Noisy: logs 1,000 lines per message, and once from an out-of-bounds pointer
;; when the message is {"oob":..}.
(module
  (import "caxton" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "line")
  (func (export "caxton_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "caxton_handle") (param $ptr i32) (param $len i32) (result i64)
    (local $i i32)
    (if (i32.eq (i32.load8_u (i32.add (local.get $ptr) (i32.const 2))) (i32.const 111))
      (then (call $log (i32.const 3) (i32.const 65530) (i32.const 100))))
    (loop $more
      (call $log (i32.const 2) (i32.const 16) (i32.const 4))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $more (i32.lt_u (local.get $i) (i32.const 1000))))
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len)))))
