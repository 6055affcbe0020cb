//! Mixing several 48 kHz frames with a soft clipper: linear below the knee, a smooth tanh
//! shoulder above it, never past full scale — so loud overlaps compress instead of wrapping.

const KNEE: f32 = 0.8;

/// Soft clip one sample: identity up to ±0.8, then approaches ±1.0 smoothly.
#[inline]
pub fn soft_clip(x: f32) -> f32 {
    let a = x.abs();
    if a <= KNEE {
        x
    } else {
        let room = 1.0 - KNEE;
        (KNEE + room * ((a - KNEE) / room).tanh()).copysign(x)
    }
}

/// `out += input` (mix accumulation without a list of inputs, for the frame path).
pub fn add(out: &mut [f32], input: &[f32]) {
    for (o, s) in out.iter_mut().zip(input.iter()) {
        *o += s;
    }
}

/// Soft clip a whole frame in place.
pub fn clip(out: &mut [f32]) {
    for o in out.iter_mut() {
        *o = soft_clip(*o);
    }
}

/// `out = soft_clip(Σ inputs)`. Every input must be `out.len()` long (shorter ones are
/// treated as ending in silence).
pub fn mix_into(inputs: &[&[f32]], out: &mut [f32]) {
    out.fill(0.0);
    for input in inputs {
        add(out, input);
    }
    clip(out);
}
