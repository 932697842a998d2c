;; FastCDC's gear loop (chunker.ts), in WebAssembly: V8 runs the JavaScript form at 0.5-1.0 GB/s here and
;; this one at 1.5-2 GB/s, which is most of a backup's cutting time. gear.ts loads it; after editing, run
;; `node scripts/build-wasm.ts` to regenerate gear-wasm.ts (a test checks that they match).
;;
;; The memory is imported and shared so that a backup worker can scan its ring of shared memory in place.
;; The 256-entry gear table (i32, little-endian) lies in that memory too, at $table.
(module
  (import "lifeboat" "memory" (memory 1 65536 shared))
  (global $table (export "table") (mut i32) (i32.const 0))
  ;; The running hash after a scan that found no cut, to carry into the next one.
  (global $hash (export "hash") (mut i32) (i32.const 0))

  ;; Rolls the hash h over the bytes at [p, end): h = (h << 1) + gear[byte], in 32-bit arithmetic. Returns
  ;; the address just after the first byte at which (h & mask) == 0, or -1 if there is none; either way $hash
  ;; holds the hash at the point returned (or at end).
  (func (export "scan") (param $p i32) (param $end i32) (param $h i32) (param $mask i32) (result i32)
    (local $t i32)
    (local $last4 i32)
    (local.set $t (global.get $table))
    ;; Four bytes per turn while four remain (one bounds test for four), then one at a time. Addresses stay
    ;; below 2 GiB, so signed comparisons are safe even when end < 4.
    (local.set $last4 (i32.sub (local.get $end) (i32.const 4)))
    (block $fours
      (br_if $fours (i32.gt_s (local.get $p) (local.get $last4)))
      (loop $four
        (local.set $h (i32.add (i32.shl (local.get $h) (i32.const 1))
          (i32.load (i32.add (local.get $t) (i32.shl (i32.load8_u offset=0 (local.get $p)) (i32.const 2))))))
        (if (i32.eqz (i32.and (local.get $h) (local.get $mask)))
          (then (global.set $hash (local.get $h)) (return (i32.add (local.get $p) (i32.const 1)))))
        (local.set $h (i32.add (i32.shl (local.get $h) (i32.const 1))
          (i32.load (i32.add (local.get $t) (i32.shl (i32.load8_u offset=1 (local.get $p)) (i32.const 2))))))
        (if (i32.eqz (i32.and (local.get $h) (local.get $mask)))
          (then (global.set $hash (local.get $h)) (return (i32.add (local.get $p) (i32.const 2)))))
        (local.set $h (i32.add (i32.shl (local.get $h) (i32.const 1))
          (i32.load (i32.add (local.get $t) (i32.shl (i32.load8_u offset=2 (local.get $p)) (i32.const 2))))))
        (if (i32.eqz (i32.and (local.get $h) (local.get $mask)))
          (then (global.set $hash (local.get $h)) (return (i32.add (local.get $p) (i32.const 3)))))
        (local.set $h (i32.add (i32.shl (local.get $h) (i32.const 1))
          (i32.load (i32.add (local.get $t) (i32.shl (i32.load8_u offset=3 (local.get $p)) (i32.const 2))))))
        (if (i32.eqz (i32.and (local.get $h) (local.get $mask)))
          (then (global.set $hash (local.get $h)) (return (i32.add (local.get $p) (i32.const 4)))))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (br_if $four (i32.le_s (local.get $p) (local.get $last4)))))
    (block $done
      (br_if $done (i32.ge_s (local.get $p) (local.get $end)))
      (loop $one
        (local.set $h (i32.add (i32.shl (local.get $h) (i32.const 1))
          (i32.load (i32.add (local.get $t) (i32.shl (i32.load8_u (local.get $p)) (i32.const 2))))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (if (i32.eqz (i32.and (local.get $h) (local.get $mask)))
          (then (global.set $hash (local.get $h)) (return (local.get $p))))
        (br_if $one (i32.lt_s (local.get $p) (local.get $end)))))
    (global.set $hash (local.get $h))
    (i32.const -1))
)
