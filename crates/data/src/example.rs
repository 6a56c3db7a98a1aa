//! The running example's data: synthetic pose clips of hospital patients who walk, stand, sit
//! or fall, as a keypoint detector would report them from a ward camera.
//!
//! Each clip is 3–5 s at 10 fps of the 17 COCO body keypoints (x, y in the camera's pixels,
//! confidence). Bodies are built from a height and proportions (children are smaller, with
//! larger heads and shorter legs), placed in one of several rooms (each camera sees a different
//! height of scene), moved by the activity's dynamics, and jittered like a detector. Some clips
//! are deliberately hard: quick "plop" sits, slow slumping falls, sits onto low stools. The
//! world is built in metres and projected last, so `--camera 4k` multiplies every coordinate by
//! three and leaves everything else as it was — the seed's training–serving skew.
//!
//! Everything is a function of the seed and the clip's number, so clip 7 is the same clip
//! whether 10 or 10,000 are generated, at either resolution.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};

use crate::error::{Error, Result};
use crate::table::{self, Format};

/// The 17 COCO keypoints, in order.
pub const KEYPOINTS: [&str; 17] = [
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
];

pub const ACTIVITIES: [&str; 4] = ["walk", "stand", "sit", "fall"];
const FPS: f64 = 10.0;

/// The camera's frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Camera {
    /// 1280 × 720.
    P720,
    /// 3840 × 2160.
    K4,
}

impl Camera {
    pub fn parse(s: &str) -> Result<Camera> {
        match s {
            "720p" => Ok(Camera::P720),
            "4k" => Ok(Camera::K4),
            other => Err(Error::invalid(format!("a camera is 720p or 4k, not '{other}'"))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Camera::P720 => "720p",
            Camera::K4 => "4k",
        }
    }

    pub fn size(self) -> (f64, f64) {
        match self {
            Camera::P720 => (1280.0, 720.0),
            Camera::K4 => (3840.0, 2160.0),
        }
    }
}

/// Who is in the clips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subjects {
    Adult,
    Child,
    /// Half adults, half children.
    Mixed,
}

impl Subjects {
    pub fn parse(s: &str) -> Result<Subjects> {
        match s {
            "adult" => Ok(Subjects::Adult),
            "child" => Ok(Subjects::Child),
            "mixed" => Ok(Subjects::Mixed),
            other => {
                Err(Error::invalid(format!("subjects are adult, child or mixed, not '{other}'")))
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub clips: usize,
    pub seed: u64,
    pub camera: Camera,
    pub subjects: Subjects,
}

/// A room: how many metres of scene the camera's frame spans vertically, and where the floor
/// line sits (a fraction of the frame from the top).
struct Room {
    name: &'static str,
    view_m: f64,
    floor: f64,
}

const ROOMS: [Room; 4] = [
    Room { name: "ward3-a", view_m: 2.6, floor: 0.92 },
    Room { name: "ward3-b", view_m: 3.2, floor: 0.88 },
    Room { name: "ward5-a", view_m: 3.8, floor: 0.85 },
    Room { name: "corridor", view_m: 4.6, floor: 0.82 },
];

/// One generated clip.
#[derive(Debug, Clone)]
pub struct Clip {
    pub id: String,
    pub activity: &'static str,
    pub subject: &'static str,
    pub room: &'static str,
    /// Per frame, 17 × (x, y, confidence), rounded as written.
    pub frames: Vec<[[f64; 3]; 17]>,
}

/// A deterministic stream: SplitMix64.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64, index: u64) -> Rng {
        let mut r = Rng(seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        r.0 = r.0.wrapping_add(index.wrapping_mul(0xd1b5_4a32_d192_ed03));
        r.next();
        r
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        crate::profile::mix64(self.0)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        let u1 = self.unit().max(1e-300);
        let u2 = self.unit();
        mean + sd * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

/// The body's proportions, in metres.
struct Body {
    height: f64,
    torso: f64,
    neck_head: f64,
    shoulder_w: f64,
    hip_w: f64,
    upper_arm: f64,
    forearm: f64,
    thigh: f64,
    shin: f64,
}

impl Body {
    fn new(child: bool, rng: &mut Rng) -> Body {
        let height = if child {
            rng.normal(1.18, 0.14).clamp(0.85, 1.5)
        } else {
            rng.normal(1.70, 0.09).clamp(1.45, 1.98)
        };
        // Children: larger heads, shorter legs, relatively.
        let (head, leg) = if child { (0.17, 0.45) } else { (0.13, 0.50) };
        let leg = leg * rng.range(0.97, 1.03);
        Body {
            height,
            torso: height * (0.82 - leg - head) * 1.05,
            neck_head: height * head,
            shoulder_w: height * if child { 0.24 } else { 0.23 },
            hip_w: height * 0.15,
            upper_arm: height * 0.17,
            forearm: height * 0.15,
            thigh: height * leg * 0.5,
            shin: height * leg * 0.5,
        }
    }

    fn leg(&self) -> f64 {
        self.thigh + self.shin
    }
}

/// The state that drives a frame's pose.
#[derive(Clone, Copy)]
struct Pose {
    /// Hip centre (metres: x along the floor, y above it).
    hip_x: f64,
    hip_y: f64,
    /// Torso angle from vertical, radians (positive leans in the facing direction).
    torso: f64,
    /// Thigh angle from straight down, radians (π/2 = horizontal, as when seated).
    thigh: f64,
    /// Knee bend: shin angle relative to the thigh.
    knee: f64,
    /// Walking leg swing, radians (left leg; the right is opposite).
    swing: f64,
    /// 1 or -1: which way the person faces.
    facing: f64,
}

fn rotate(angle: f64, len: f64) -> (f64, f64) {
    // Angle from straight down; x grows with the angle.
    (len * angle.sin(), -len * angle.cos())
}

/// The 17 keypoints in metres (x, y up) for a pose.
fn skeleton(b: &Body, p: &Pose) -> [(f64, f64); 17] {
    let f = p.facing;
    let hip = (p.hip_x, p.hip_y);
    let up = (f * p.torso.sin(), p.torso.cos());
    let perp = (up.1, -up.0);
    let shoulder = (hip.0 + up.0 * b.torso, hip.1 + up.1 * b.torso);
    let head = (shoulder.0 + up.0 * b.neck_head * 0.75, shoulder.1 + up.1 * b.neck_head * 0.75);
    let off = |c: (f64, f64), along: f64, side: f64| {
        (c.0 + perp.0 * side + up.0 * along, c.1 + perp.1 * side + up.1 * along)
    };
    let nose = off(head, 0.0, f * 0.02 * b.height);
    let eye = b.neck_head * 0.12;
    let ls = off(shoulder, 0.0, b.shoulder_w / 2.0);
    let rs = off(shoulder, 0.0, -b.shoulder_w / 2.0);
    let lh = off(hip, 0.0, b.hip_w / 2.0);
    let rh = off(hip, 0.0, -b.hip_w / 2.0);
    // Arms hang along the torso, swinging opposite the legs.
    let arm = |s: (f64, f64), swing: f64| {
        let a = -f * p.torso + f * swing * 0.6;
        let (dx, dy) = rotate(a, b.upper_arm);
        let elbow = (s.0 + dx, s.1 + dy);
        let (ex, ey) = rotate(a + f * 0.25, b.forearm);
        (elbow, (elbow.0 + ex, elbow.1 + ey))
    };
    let (le, lw) = arm(ls, -p.swing);
    let (re, rw) = arm(rs, p.swing);
    let leg = |h: (f64, f64), swing: f64| {
        let thigh = f * (p.thigh + swing);
        let (dx, dy) = rotate(thigh, b.thigh);
        let knee = (h.0 + dx, h.1 + dy);
        let (sx, sy) = rotate(thigh - f * p.knee, b.shin);
        (knee, (knee.0 + sx, knee.1 + sy))
    };
    let (lk, la) = leg(lh, p.swing);
    let (rk, ra) = leg(rh, -p.swing);
    let points = [
        nose,
        off(head, eye, eye),
        off(head, eye, -eye),
        off(head, 0.0, b.neck_head * 0.2),
        off(head, 0.0, -b.neck_head * 0.2),
        ls,
        rs,
        le,
        re,
        lw,
        rw,
        lh,
        rh,
        lk,
        rk,
        la,
        ra,
    ];
    // Nothing goes through the floor.
    points.map(|(x, y)| (x, y.max(0.0)))
}

fn smooth(t: f64) -> f64 {
    let t = t.clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// The poses of one clip of `activity`.
fn poses(activity: &str, b: &Body, n: usize, rng: &mut Rng) -> Vec<Pose> {
    let facing = if rng.chance(0.5) { 1.0 } else { -1.0 };
    let stand_hip = b.leg() * 0.98;
    let start_x = rng.range(-0.8, 0.8);
    let lean = rng.normal(0.05, 0.03);
    let mut out = Vec::with_capacity(n);
    let dt = 1.0 / FPS;
    match activity {
        "walk" => {
            let speed = rng.range(0.5, 1.4) * b.height / 1.7;
            let cadence = rng.range(1.6, 2.1);
            let phase = rng.range(0.0, std::f64::consts::TAU);
            // Some walkers stumble and catch themselves: a quick dip, then upright again.
            let stumble = rng.chance(0.12).then(|| (rng.range(0.8, 2.5), rng.range(0.15, 0.35)));
            for i in 0..n {
                let t = i as f64 * dt;
                let s = (std::f64::consts::TAU * cadence * t / 2.0 + phase).sin();
                let dip =
                    stumble.map_or(0.0, |(at, depth)| depth * (-(t - at).powi(2) / 0.04).exp());
                out.push(Pose {
                    hip_x: start_x - facing * 1.2 + facing * speed * t,
                    hip_y: stand_hip - 0.02 * b.height * (1.0 - s.abs()) - dip * b.leg(),
                    torso: lean + 0.04 + 1.5 * dip,
                    thigh: 0.0,
                    knee: 0.25 * (1.0 - s.abs()) + 2.0 * dip,
                    swing: 0.35 * s,
                    facing,
                });
            }
        }
        "stand" => {
            // Some standers bend down to pick something up and straighten again.
            let bend = rng.chance(0.2).then(|| (rng.range(0.5, 2.0), rng.range(0.6, 1.1)));
            let sway = rng.range(0.005, 0.02);
            for i in 0..n {
                let t = i as f64 * dt;
                let mut torso = lean + sway * (t * 1.3).sin();
                let mut knee = 0.05;
                if let Some((at, depth)) = bend {
                    let k = (-(t - at - 0.8).powi(2) / 0.3).exp();
                    torso += depth * k;
                    knee += 0.5 * k;
                }
                out.push(Pose {
                    hip_x: start_x + sway * (t * 0.7).sin(),
                    hip_y: stand_hip - 0.06 * b.height * (knee - 0.05),
                    torso,
                    thigh: 0.0,
                    knee,
                    swing: 0.02 * (t * 2.0).sin(),
                    facing,
                });
            }
        }
        "sit" => {
            let start = rng.range(0.4, 1.4);
            // Mostly controlled, sometimes a quick plop; some sit on a low stool.
            let dur = if rng.chance(0.2) { rng.range(0.3, 0.5) } else { rng.range(0.7, 1.6) };
            // Some sit on a low stool or down on the floor: their clips look like slumps.
            let seat = match rng.unit() {
                u if u < 0.12 => rng.range(0.1, 0.2),
                u if u < 0.27 => rng.range(0.2, 0.32),
                _ => rng.range(0.42, 0.52),
            };
            let seat = seat * b.height / 1.7;
            for i in 0..n {
                let t = i as f64 * dt;
                let k = smooth((t - start) / dur);
                let mid = (std::f64::consts::PI * k).sin();
                out.push(Pose {
                    hip_x: start_x - facing * 0.15 * k,
                    hip_y: stand_hip + (seat - stand_hip) * k,
                    torso: lean + 0.45 * mid + 0.1 * k,
                    thigh: 1.45 * k,
                    knee: 1.5 * k,
                    swing: 0.0,
                    facing,
                });
            }
        }
        _ => {
            // A fall: mostly quick; sometimes a slow slump that ends sitting on the floor.
            let start = rng.range(0.5, 1.8);
            let slump = rng.chance(0.3);
            let dur = if slump { rng.range(1.2, 2.2) } else { rng.range(0.35, 0.9) };
            let end_hip = if slump { rng.range(0.12, 0.2) } else { rng.range(0.08, 0.16) };
            let end_torso = if slump { rng.range(0.15, 0.7) } else { rng.range(0.9, 1.65) };
            let walking = rng.chance(0.4);
            let speed = rng.range(0.4, 1.0);
            for i in 0..n {
                let t = i as f64 * dt;
                let k = smooth((t - start) / dur).powf(if slump { 1.0 } else { 1.6 });
                let moving = if walking { speed * t.min(start) } else { 0.0 };
                let s = (std::f64::consts::TAU * 0.9 * t).sin() * if walking { 1.0 } else { 0.0 };
                out.push(Pose {
                    hip_x: start_x + facing * (moving + 0.35 * k * b.height / 1.7),
                    hip_y: stand_hip + (end_hip * b.height / 1.7 - stand_hip) * k,
                    torso: lean + (end_torso - lean) * k,
                    // Slumps end seated on the floor, legs out; falls end lying, legs behind.
                    thigh: if slump { 1.4 * k } else { -(end_torso - 0.1) * k },
                    knee: if slump { 0.2 * k } else { 0.3 * k },
                    swing: 0.3 * s * (1.0 - k),
                    facing,
                });
            }
        }
    }
    out
}

/// Clip `index` of a generation with these options.
pub fn clip(opts: &Options, index: usize) -> Clip {
    let i = index as u64;
    let mut pick = Rng::new(opts.seed, 1, i);
    let activity = {
        let u = pick.unit();
        match u {
            u if u < 0.30 => "walk",
            u if u < 0.55 => "stand",
            u if u < 0.80 => "sit",
            _ => "fall",
        }
    };
    let room = &ROOMS[(pick.next() % ROOMS.len() as u64) as usize];
    let mut who = Rng::new(opts.seed, 2, i);
    let child = match opts.subjects {
        Subjects::Adult => false,
        Subjects::Child => true,
        Subjects::Mixed => who.chance(0.5),
    };
    let mut rng = Rng::new(opts.seed, 3, i);
    let body = Body::new(child, &mut rng);
    let seconds = rng.range(3.0, 5.0);
    let n = (seconds * FPS).round() as usize;
    let poses = poses(activity, &body, n, &mut rng);
    let (width, height) = opts.camera.size();
    let scale = height / room.view_m;
    let floor_px = height * room.floor;
    let centre = width / 2.0 + rng.range(-0.25, 0.25) * width;
    let detector_noise = rng.range(0.008, 0.03);
    // How the motion lies to the camera: 1 = across the frame, 0 = straight at the camera
    // (foreshortened: a fall towards the camera barely widens the body's box). Walkers mostly
    // cross the frame.
    let across = if activity == "walk" { rng.range(0.5, 1.0) } else { rng.range(0.05, 1.0) };
    // Some falls end behind a bed or a chair: the low keypoints lose the detector.
    let hidden_low = activity == "fall" && rng.chance(0.2);
    let root = poses.first().map(|p| p.hip_x).unwrap_or(0.0);
    let mut frames = Vec::with_capacity(n);
    for pose in &poses {
        // The camera looks down at the ward: what moves along its axis moves up or down in the
        // frame (away = up), by half its depth.
        let depth = (1.0 - across * across).sqrt() * 0.5;
        let points = skeleton(&body, pose).map(|(x, y)| {
            let d = x - root;
            (root + d * across, y + d * depth)
        });
        let lying = (pose.torso.abs() > 1.0) as u8 as f64;
        let mut frame = [[0.0; 3]; 17];
        for (k, (x, y)) in points.iter().enumerate() {
            let nx = x + rng.normal(0.0, detector_noise);
            let ny = y + rng.normal(0.0, detector_noise);
            let behind = hidden_low && pose.hip_y < body.leg() * 0.5 && *y < 0.5;
            let occluded = rng.chance(0.03 + 0.12 * lying + 0.75 * behind as u8 as f64);
            let conf = if occluded { rng.range(0.05, 0.4) } else { rng.range(0.75, 0.99) };
            let px = centre + nx * scale;
            let py = floor_px - ny * scale;
            frame[k] = [
                (px * 10.0).round() / 10.0,
                (py * 10.0).round() / 10.0,
                (conf * 100.0).round() / 100.0,
            ];
        }
        frames.push(frame);
    }
    Clip {
        id: format!("clip-{index:05}"),
        activity,
        subject: if child { "child" } else { "adult" },
        room: room.name,
        frames,
    }
}

impl Clip {
    /// The clip file's JSON: frames of 17 × [x, y, confidence] (pixels of the camera's frame).
    pub fn to_json(&self, camera: Camera) -> String {
        let (w, h) = camera.size();
        let mut s = String::with_capacity(self.frames.len() * 17 * 20 + 400);
        let _ = write!(
            s,
            "{{\"clip_id\":\"{}\",\"activity\":\"{}\",\"subject\":\"{}\",\"camera\":\"{}\",\"room\":\"{}\",\
             \"fps\":{},\"width\":{},\"height\":{},\"keypoints\":[",
            self.id,
            self.activity,
            self.subject,
            camera.as_str(),
            self.room,
            FPS,
            w,
            h
        );
        for (i, k) in KEYPOINTS.iter().enumerate() {
            let _ = write!(s, "{}\"{k}\"", if i > 0 { "," } else { "" });
        }
        s.push_str("],\"frames\":[");
        for (i, frame) in self.frames.iter().enumerate() {
            s.push_str(if i > 0 { ",[" } else { "[" });
            for (k, [x, y, c]) in frame.iter().enumerate() {
                let _ = write!(s, "{}[{x},{y},{c}]", if k > 0 { "," } else { "" });
            }
            s.push(']');
        }
        s.push_str("]}\n");
        s
    }

    /// Engineered per-clip features (pixel features scale with the camera; ratios and angles
    /// do not).
    pub fn features(&self, camera: Camera) -> Features {
        let (_, height) = camera.size();
        let valid = |p: &[f64; 3]| p[2] >= 0.5;
        let hip = |f: &[[f64; 3]; 17]| {
            let (l, r) = (f[11], f[12]);
            match (valid(&l), valid(&r)) {
                (true, true) | (false, false) => ((l[0] + r[0]) / 2.0, (l[1] + r[1]) / 2.0),
                (true, false) => (l[0], l[1]),
                (false, true) => (r[0], r[1]),
            }
        };
        let shoulders = |f: &[[f64; 3]; 17]| ((f[5][0] + f[6][0]) / 2.0, (f[5][1] + f[6][1]) / 2.0);
        let bbox = |f: &[[f64; 3]; 17]| {
            let pts: Vec<&[f64; 3]> = f.iter().filter(|p| valid(p)).collect();
            let pts = if pts.len() >= 4 { pts } else { f.iter().collect() };
            let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
            for p in pts {
                x0 = x0.min(p[0]);
                x1 = x1.max(p[0]);
                y0 = y0.min(p[1]);
                y1 = y1.max(p[1]);
            }
            ((x1 - x0).max(1e-6), (y1 - y0).max(1e-6))
        };
        let n = self.frames.len();
        let head = 5.min(n);
        let mean = |xs: &mut dyn Iterator<Item = f64>| {
            let v: Vec<f64> = xs.collect();
            v.iter().sum::<f64>() / v.len().max(1) as f64
        };
        let hip_h: Vec<f64> = self.frames.iter().map(|f| height - hip(f).1).collect();
        // Smoothed over three frames: the detector's jitter would dominate raw differences.
        let smooth: Vec<f64> = (0..n)
            .map(|i| mean(&mut hip_h[i.saturating_sub(1)..(i + 2).min(n)].iter().copied()))
            .collect();
        let start_h = mean(&mut smooth[..head].iter().copied());
        let end_h = mean(&mut smooth[n - head..].iter().copied());
        let peak_h = smooth[..n / 2 + 1].iter().copied().fold(f64::MIN, f64::max);
        let peak_down = (1..n).map(|i| (smooth[i - 1] - smooth[i]) * FPS).fold(0.0, f64::max);
        let xs: Vec<f64> = self.frames.iter().map(|f| hip(f).0).collect();
        let speed = (xs[n - 1] - xs[0]).abs() / ((n - 1).max(1) as f64 / FPS);
        let aspect = |f: &[[f64; 3]; 17]| {
            let (w, h) = bbox(f);
            w / h
        };
        let aspect_start = mean(&mut self.frames[..head].iter().map(aspect));
        let aspect_end = mean(&mut self.frames[n - head..].iter().map(aspect));
        let body_h = mean(&mut self.frames[..head].iter().map(|f| bbox(f).1));
        let torso_end = mean(&mut self.frames[n - head..].iter().map(|f| {
            let (h, s) = (hip(f), shoulders(f));
            (s.0 - h.0).abs().atan2(h.1 - s.1).to_degrees()
        }));
        Features {
            frames: n as i64,
            duration_s: n as f64 / FPS,
            hip_height_start_px: start_h,
            hip_height_end_px: end_h,
            hip_drop_px: peak_h - end_h,
            peak_down_velocity_px_s: peak_down,
            mean_speed_px_s: speed,
            body_height_px: body_h,
            bbox_aspect_start: aspect_start,
            bbox_aspect_end: aspect_end,
            bbox_aspect_change: aspect_end / aspect_start,
            torso_angle_end_deg: torso_end,
        }
    }
}

/// One clip's engineered features.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Features {
    pub frames: i64,
    pub duration_s: f64,
    pub hip_height_start_px: f64,
    pub hip_height_end_px: f64,
    pub hip_drop_px: f64,
    pub peak_down_velocity_px_s: f64,
    pub mean_speed_px_s: f64,
    pub body_height_px: f64,
    pub bbox_aspect_start: f64,
    pub bbox_aspect_end: f64,
    pub bbox_aspect_change: f64,
    pub torso_angle_end_deg: f64,
}

impl Features {
    /// Names and values of the float features, in column order.
    pub fn named(&self) -> [(&'static str, f64); 11] {
        [
            ("duration_s", self.duration_s),
            ("hip_height_start_px", self.hip_height_start_px),
            ("hip_height_end_px", self.hip_height_end_px),
            ("hip_drop_px", self.hip_drop_px),
            ("peak_down_velocity_px_s", self.peak_down_velocity_px_s),
            ("mean_speed_px_s", self.mean_speed_px_s),
            ("body_height_px", self.body_height_px),
            ("bbox_aspect_start", self.bbox_aspect_start),
            ("bbox_aspect_end", self.bbox_aspect_end),
            ("bbox_aspect_change", self.bbox_aspect_change),
            ("torso_angle_end_deg", self.torso_angle_end_deg),
        ]
    }
}

/// What [`generate`] wrote.
#[derive(Debug, Clone)]
pub struct Generated {
    pub root: PathBuf,
    pub clips: usize,
    /// Clips per activity, in [`ACTIVITIES`] order.
    pub per_activity: [usize; 4],
    pub bytes: u64,
}

/// The features table of some clips.
pub fn features_table(clips: &[Clip], camera: Camera) -> Result<RecordBatch> {
    let features: Vec<Features> = clips.iter().map(|c| c.features(camera)).collect();
    let text = |f: &dyn Fn(&Clip) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(clips.iter().map(f)))
    };
    let mut fields = vec![
        Field::new("clip_id", DataType::Utf8, false),
        Field::new("activity", DataType::Utf8, false),
        Field::new("subject", DataType::Utf8, false),
        Field::new("camera", DataType::Utf8, false),
        Field::new("room", DataType::Utf8, false),
        Field::new("frames", DataType::Int64, false),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        text(&|c| c.id.clone()),
        text(&|c| c.activity.into()),
        text(&|c| c.subject.into()),
        text(&|_| camera.as_str().into()),
        text(&|c| c.room.into()),
        Arc::new(Int64Array::from_iter_values(features.iter().map(|f| f.frames))),
    ];
    let names = Features::named(&features.first().copied().unwrap_or(Features {
        frames: 0,
        duration_s: 0.0,
        hip_height_start_px: 0.0,
        hip_height_end_px: 0.0,
        hip_drop_px: 0.0,
        peak_down_velocity_px_s: 0.0,
        mean_speed_px_s: 0.0,
        body_height_px: 0.0,
        bbox_aspect_start: 0.0,
        bbox_aspect_end: 0.0,
        bbox_aspect_change: 0.0,
        torso_angle_end_deg: 0.0,
    }));
    for (k, (name, _)) in names.iter().enumerate() {
        fields.push(Field::new(*name, DataType::Float64, false));
        columns.push(Arc::new(Float64Array::from_iter_values(
            features.iter().map(|f| f.named()[k].1),
        )));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| Error::invalid(format!("building the features table: {e}")))
}

/// Writes `clips/clip-NNNNN.json`, `clips.csv` (path, clip_id, activity, subject, camera, room:
/// usable as `data add OUT/clips --meta OUT/clips.csv`) and `features.parquet` into `out`,
/// which must be new or empty.
pub fn generate(out: &Path, opts: &Options) -> Result<Generated> {
    if opts.clips == 0 {
        return Err(Error::invalid("--clips must be at least 1"));
    }
    if out.exists() {
        let mut entries = std::fs::read_dir(out)
            .map_err(|e| Error::invalid(format!("cannot read {}: {e}", out.display())))?;
        if entries.next().is_some() {
            return Err(Error::invalid(format!(
                "{} is not empty; generate into a new or empty folder",
                out.display()
            )));
        }
    }
    let io = |e: std::io::Error| Error::invalid(format!("writing into {}: {e}", out.display()));
    let clip_dir = out.join("clips");
    std::fs::create_dir_all(&clip_dir).map_err(io)?;
    let clips: Vec<Clip> = (0..opts.clips).map(|i| clip(opts, i)).collect();
    let mut bytes = 0u64;
    let mut csv = String::from("path,clip_id,activity,subject,camera,room\n");
    let mut per_activity = [0usize; 4];
    for c in &clips {
        let json = c.to_json(opts.camera);
        bytes += json.len() as u64;
        std::fs::write(clip_dir.join(format!("{}.json", c.id)), json).map_err(io)?;
        let _ = writeln!(
            csv,
            "{}.json,{},{},{},{},{}",
            c.id,
            c.id,
            c.activity,
            c.subject,
            opts.camera.as_str(),
            c.room
        );
        if let Some(k) = ACTIVITIES.iter().position(|a| *a == c.activity) {
            per_activity[k] += 1;
        }
    }
    bytes += csv.len() as u64;
    std::fs::write(out.join("clips.csv"), csv).map_err(io)?;
    let parquet = table::encode(&features_table(&clips, opts.camera)?, Format::Parquet)?;
    bytes += parquet.len() as u64;
    std::fs::write(out.join("features.parquet"), parquet).map_err(io)?;
    Ok(Generated { root: out.to_path_buf(), clips: clips.len(), per_activity, bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(clips: usize, camera: Camera, subjects: Subjects) -> Options {
        Options { clips, seed: 11, camera, subjects }
    }

    #[test]
    fn clips_are_deterministic_and_independent_of_the_count() {
        let a = clip(&opts(10, Camera::P720, Subjects::Adult), 7);
        let b = clip(&opts(10_000, Camera::P720, Subjects::Adult), 7);
        assert_eq!(a.to_json(Camera::P720), b.to_json(Camera::P720));
        let other = clip(&Options { seed: 12, ..opts(10, Camera::P720, Subjects::Adult) }, 7);
        assert_ne!(a.to_json(Camera::P720), other.to_json(Camera::P720));
        assert!((30..=50).contains(&a.frames.len()));
        let json: serde_json::Value = serde_json::from_str(&a.to_json(Camera::P720)).unwrap();
        assert_eq!(json["keypoints"].as_array().unwrap().len(), 17);
        assert_eq!(json["frames"][0].as_array().unwrap().len(), 17);
        assert_eq!(json["width"], 1280.0);
    }

    #[test]
    fn a_4k_camera_triples_pixel_features_and_keeps_ratios() {
        for i in 0..40 {
            let hd = clip(&opts(40, Camera::P720, Subjects::Adult), i);
            let uhd = clip(&opts(40, Camera::K4, Subjects::Adult), i);
            assert_eq!(hd.activity, uhd.activity);
            let (f, g) = (hd.features(Camera::P720), uhd.features(Camera::K4));
            for (name, r) in [
                ("hip_height_start", g.hip_height_start_px / f.hip_height_start_px),
                ("body_height", g.body_height_px / f.body_height_px),
            ] {
                assert!((r - 3.0).abs() < 0.01, "clip {i} {name}: ratio {r}");
            }
            assert!((g.bbox_aspect_start - f.bbox_aspect_start).abs() < 0.01 * f.bbox_aspect_start);
            assert!((g.torso_angle_end_deg - f.torso_angle_end_deg).abs() < 0.5);
            let (x, y) = (hd.frames[3][0][0], uhd.frames[3][0][0]);
            assert!((y - 3.0 * x).abs() < 0.2, "raw x {x} vs {y}");
        }
    }

    #[test]
    fn children_are_smaller_and_shift_the_distribution() {
        let mean_height = |s| {
            (0..200)
                .map(|i| clip(&opts(200, Camera::P720, s), i).features(Camera::P720).body_height_px)
                .sum::<f64>()
                / 200.0
        };
        let (adult, child) = (mean_height(Subjects::Adult), mean_height(Subjects::Child));
        assert!(child < adult * 0.8, "children {child} px vs adults {adult} px");
        let mixed: Vec<&str> =
            (0..400).map(|i| clip(&opts(400, Camera::P720, Subjects::Mixed), i).subject).collect();
        let kids = mixed.iter().filter(|s| **s == "child").count();
        assert!((150..=250).contains(&kids), "{kids} of 400");
    }

    /// A plain logistic regression (standardised features, gradient descent) separates falls
    /// from the rest well, but not perfectly: the hard clips are hard.
    #[test]
    fn a_simple_classifier_separates_falls_well_but_not_perfectly() {
        let o = opts(1200, Camera::P720, Subjects::Adult);
        let clips: Vec<Clip> = (0..1200).map(|i| clip(&o, i)).collect();
        let rows: Vec<(Vec<f64>, f64)> = clips
            .iter()
            .map(|c| {
                let f = c.features(Camera::P720);
                let x = f.named().iter().map(|(_, v)| *v).collect();
                (x, (c.activity == "fall") as u8 as f64)
            })
            .collect();
        let falls = rows.iter().filter(|r| r.1 == 1.0).count();
        assert!((150..=330).contains(&falls), "{falls} falls of 1200");
        let (train, test) = rows.split_at(800);
        let d = train[0].0.len();
        let mean: Vec<f64> =
            (0..d).map(|j| train.iter().map(|r| r.0[j]).sum::<f64>() / 800.0).collect();
        let sd: Vec<f64> = (0..d)
            .map(|j| {
                (train.iter().map(|r| (r.0[j] - mean[j]).powi(2)).sum::<f64>() / 800.0)
                    .sqrt()
                    .max(1e-9)
            })
            .collect();
        let z = |x: &[f64]| -> Vec<f64> { (0..d).map(|j| (x[j] - mean[j]) / sd[j]).collect() };
        let (mut w, mut b) = (vec![0.0; d], 0.0);
        for _ in 0..400 {
            let (mut gw, mut gb) = (vec![0.0; d], 0.0);
            for (x, y) in train {
                let x = z(x);
                let p = 1.0 / (1.0 + (-(b + (0..d).map(|j| w[j] * x[j]).sum::<f64>())).exp());
                for j in 0..d {
                    gw[j] += (p - y) * x[j];
                }
                gb += p - y;
            }
            for j in 0..d {
                w[j] -= 0.5 * gw[j] / 800.0;
            }
            b -= 0.5 * gb / 800.0;
        }
        let correct = test
            .iter()
            .filter(|(x, y)| {
                let x = z(x);
                let s = b + (0..d).map(|j| w[j] * x[j]).sum::<f64>();
                (s > 0.0) == (*y == 1.0)
            })
            .count();
        let accuracy = correct as f64 / test.len() as f64;
        assert!((0.88..0.995).contains(&accuracy), "accuracy {accuracy}");
    }

    #[test]
    fn generate_writes_clips_meta_and_features() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("falls");
        let g = generate(&out, &opts(25, Camera::P720, Subjects::Mixed)).unwrap();
        assert_eq!(g.clips, 25);
        assert_eq!(g.per_activity.iter().sum::<usize>(), 25);
        assert_eq!(std::fs::read_dir(out.join("clips")).unwrap().count(), 25);
        let csv = std::fs::read_to_string(out.join("clips.csv")).unwrap();
        assert_eq!(csv.lines().count(), 26);
        assert!(
            csv.starts_with(
                "path,clip_id,activity,subject,camera,room\nclip-00000.json,clip-00000,"
            )
        );
        let bytes = std::fs::read(out.join("features.parquet")).unwrap();
        let (info, profile) = table::inspect(
            table::Batches::open_bytes(bytes.clone().into(), Format::Parquet).unwrap(),
            Format::Parquet,
        )
        .unwrap();
        assert_eq!(info.rows, 25);
        assert_eq!(info.columns.len(), 17);
        assert_eq!(profile.column("camera").unwrap().distinct_count(), 1);
        // Deterministic to the byte.
        let again = dir.path().join("again");
        generate(&again, &opts(25, Camera::P720, Subjects::Mixed)).unwrap();
        assert_eq!(std::fs::read(again.join("features.parquet")).unwrap(), bytes);
        assert!(generate(&out, &opts(5, Camera::P720, Subjects::Adult)).is_err(), "not empty");
    }
}
