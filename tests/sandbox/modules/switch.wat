;; An agent whose behaviour the message picks, by the byte after `{"`:
;; {"trap":..} traps, {"loop":..} spins forever, {"error":..} replies with an
;; agent error, anything else is echoed back. Used for health/circuit tests.
(module
  (memory (export "memory") 1)
  (data (i32.const 16) "{\"error\":\"asked to fail\"}")
  (func (export "caxton_alloc") (param $len i32) (result i32)
    (if (i32.gt_u (local.get $len) (i32.const 60000)) (then (return (i32.const 0))))
    (i32.const 1024))
  (func (export "caxton_handle") (param $ptr i32) (param $len i32) (result i64)
    (local $mode i32)
    (local.set $mode (i32.load8_u (i32.add (local.get $ptr) (i32.const 2))))
    (if (i32.eq (local.get $mode) (i32.const 116)) (then unreachable))         ;; t
    (if (i32.eq (local.get $mode) (i32.const 108)) (then (loop $spin (br $spin)))) ;; l
    (if (i32.eq (local.get $mode) (i32.const 101))                               ;; e
      (then (return (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const 25)))))
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len)))))
