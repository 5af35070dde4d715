//! The factory inside a running worker (`POST /v1/factory/jobs`): fine-tuning jobs on the
//! worker's own base model, one at a time, registered on chain by the worker's account and added
//! to the models it serves, so the adapter is served from the next finalized block.
//!
//! Jobs are files (`<jobs dir>/<id>.json`, replaced atomically at every state change): a worker
//! that stops mid-job runs it again at start. A rerun is the same computation (seeded), a trained
//! adapter already in the store is taken as is, and a registration already on chain (found by the
//! adapter id) is not repeated.

use super::data::{snapshot_docs, SnapshotRef};
use super::train::OptimArgs;
use super::{check_base, finetune, register_once, serve_on, trained_before, FinetuneReport, FinetuneSpec, LoraArgs};
use crate::chain::settler::Connection;
use anyhow::{ensure, Context, Result};
use openledger_primitives::ModelId;
use serde::{Deserialize, Serialize};
use sp_core::sr25519;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

fn default_license() -> String {
	"cc-by-4.0".into()
}
fn yes() -> bool {
	true
}

/// What a client asks for.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
	/// Adapter and model name (the `model` clients will ask for).
	pub name: String,
	/// Training data: `{datanet, version, weight}`.
	pub snapshots: Vec<SnapshotRef>,
	#[serde(default)]
	pub lora: LoraArgs,
	#[serde(default)]
	pub optim: OptimArgs,
	#[serde(default = "default_license")]
	pub license: String,
	/// Add the model to this worker's served models once registered.
	#[serde(default = "yes")]
	pub serve: bool,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
	Queued,
	Running,
	Registering,
	Done,
	Failed,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Job {
	pub id: u64,
	pub state: JobState,
	pub request: JobRequest,
	pub step: usize,
	pub total_steps: usize,
	pub loss: Option<f64>,
	pub report: Option<FinetuneReport>,
	pub model: Option<ModelId>,
	pub error: Option<String>,
	pub created: u64,
	/// Starts of this job; a job the worker stopped in (crash, abort, kill) more than
	/// [`MAX_ATTEMPTS`] times is failed instead of started again, so a poisoned job cannot
	/// crash-loop the worker.
	#[serde(default)]
	pub attempts: u32,
}

/// Jobs queued or running at once; more are refused (429).
pub const MAX_PENDING_JOBS: usize = 8;
/// Snapshots one job may mix.
pub const MAX_SNAPSHOTS: usize = 16;
/// Starts of a job before it is failed for good.
pub const MAX_ATTEMPTS: u32 = 2;

/// Why a job is refused: the request (400) or the queue (429).
#[derive(Debug, PartialEq, Eq)]
pub enum SubmitError {
	Invalid(String),
	Full,
}

pub struct Factory {
	pub base_dir: PathBuf,
	pub base_model: ModelId,
	pub adapters_dir: PathBuf,
	pub store: PathBuf,
	pub jobs_dir: PathBuf,
	pub conn: Arc<Connection>,
	/// The worker's account: owner of what it trains, and the worker record it updates.
	pub account: sr25519::Pair,
	jobs: Mutex<BTreeMap<u64, Job>>,
	wake: tokio::sync::Notify,
}

/// A job found unfinished at start: queued again, or failed for good when the worker already
/// stopped during it [`MAX_ATTEMPTS`] times.
pub fn recover(job: &mut Job) {
	if !matches!(job.state, JobState::Running | JobState::Registering) {
		return;
	}
	if job.attempts >= MAX_ATTEMPTS {
		job.state = JobState::Failed;
		job.error = Some(format!(
			"the worker stopped during this job {} times (crash, out of memory or kill); it is not started again",
			job.attempts
		));
		tracing::warn!("factory job {}: {}", job.id, job.error.as_deref().unwrap_or_default());
	} else {
		job.state = JobState::Queued;
	}
}

/// Bounds a client's job request: name, snapshots, every knob.
pub fn validate(request: &JobRequest) -> Result<(), String> {
	if !crate::adapters::valid_name(&request.name) {
		return Err(format!("name {:?}: 1 to 128 letters, digits, '-', '_', '.' only", request.name.chars().take(64).collect::<String>()));
	}
	if request.snapshots.is_empty() || request.snapshots.len() > MAX_SNAPSHOTS {
		return Err(format!("snapshots: 1 to {MAX_SNAPSHOTS} of {{datanet, version, weight}}"));
	}
	if request.snapshots.iter().any(|s| !(s.weight > 0.0 && s.weight <= 1e6)) {
		return Err("snapshots: weights must be positive and at most 1e6".into());
	}
	if request.license.is_empty() || request.license.len() > 64 {
		return Err("license: 1 to 64 bytes (an SPDX id)".into());
	}
	request.lora.check().map_err(|e| format!("lora: {e}"))?;
	request.optim.check().map_err(|e| format!("optim: {e}"))?;
	Ok(())
}

impl Factory {
	/// Opens the job folder; unfinished jobs are queued again, unless the worker already
	/// stopped during them [`MAX_ATTEMPTS`] times.
	pub fn open(
		base_dir: PathBuf,
		base_model: ModelId,
		adapters_dir: PathBuf,
		store: PathBuf,
		jobs_dir: PathBuf,
		conn: Arc<Connection>,
		account: sr25519::Pair,
	) -> Result<Arc<Self>> {
		std::fs::create_dir_all(&jobs_dir).with_context(|| format!("creating {}", jobs_dir.display()))?;
		let mut jobs = BTreeMap::new();
		for e in std::fs::read_dir(&jobs_dir)?.flatten() {
			let p = e.path();
			if p.extension().is_some_and(|x| x == "json") {
				let mut job: Job = serde_json::from_slice(&std::fs::read(&p)?).with_context(|| format!("job file {}", p.display()))?;
				recover(&mut job);
				jobs.insert(job.id, job);
			}
		}
		let f = Arc::new(Self {
			base_dir, base_model, adapters_dir, store, jobs_dir, conn, account,
			jobs: Mutex::new(jobs),
			wake: tokio::sync::Notify::new(),
		});
		for job in f.jobs.lock().expect("not poisoned; qed").values() {
			f.persist(job)?;
		}
		Ok(f)
	}

	fn persist(&self, job: &Job) -> Result<()> {
		let path = self.jobs_dir.join(format!("{}.json", job.id));
		let tmp = self.jobs_dir.join(format!(".{}.json.tmp", job.id));
		std::fs::write(&tmp, serde_json::to_vec_pretty(job)?)?;
		std::fs::File::open(&tmp)?.sync_all()?;
		std::fs::rename(&tmp, &path)?;
		Ok(())
	}

	fn update(&self, id: u64, f: impl FnOnce(&mut Job)) -> Result<()> {
		let mut jobs = self.jobs.lock().expect("not poisoned; qed");
		let job = jobs.get_mut(&id).context("no such job")?;
		f(job);
		self.persist(job)
	}

	pub fn get(&self, id: u64) -> Option<Job> {
		self.jobs.lock().expect("not poisoned; qed").get(&id).cloned()
	}

	pub fn list(&self) -> Vec<Job> {
		self.jobs.lock().expect("not poisoned; qed").values().cloned().collect()
	}

	/// Validates and queues a job (on disk before it is acknowledged).
	pub fn submit(&self, request: JobRequest) -> Result<Job, SubmitError> {
		validate(&request).map_err(SubmitError::Invalid)?;
		let mut jobs = self.jobs.lock().expect("not poisoned; qed");
		let taken = jobs.values().any(|j| j.request.name == request.name && j.state != JobState::Failed);
		if taken || self.adapters_dir.join(&request.name).exists() {
			return Err(SubmitError::Invalid(format!("an adapter named {:?} exists or is being trained", request.name)));
		}
		let pending = jobs.values().filter(|j| matches!(j.state, JobState::Queued | JobState::Running | JobState::Registering)).count();
		if pending >= MAX_PENDING_JOBS {
			return Err(SubmitError::Full);
		}
		let id = jobs.keys().next_back().map_or(1, |k| k + 1);
		let created = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
		let job = Job {
			id, state: JobState::Queued, request, step: 0, total_steps: 0, loss: None, report: None, model: None,
			error: None, created, attempts: 0,
		};
		self.persist(&job).map_err(|e| {
			tracing::error!("cannot store factory job {id}: {e:#}");
			SubmitError::Invalid("the job cannot be stored on this worker".into())
		})?;
		jobs.insert(id, job.clone());
		drop(jobs);
		self.wake.notify_one();
		Ok(job)
	}

	fn next_queued(&self) -> Option<u64> {
		self.jobs.lock().expect("not poisoned; qed").values().find(|j| j.state == JobState::Queued).map(|j| j.id)
	}

	/// Runs queued jobs one after the other, forever.
	pub async fn run(self: Arc<Self>) {
		loop {
			let Some(id) = self.next_queued() else {
				self.wake.notified().await;
				continue;
			};
			let result = self.clone().execute(id).await;
			let _ = self.update(id, |j| match result {
				Ok(()) => j.state = JobState::Done,
				Err(e) => {
					tracing::warn!("factory job {id} failed: {e:#}");
					j.state = JobState::Failed;
					j.error = Some(format!("{e:#}"));
				},
			});
		}
	}

	async fn execute(self: Arc<Self>, id: u64) -> Result<()> {
		// Counted on disk before the work starts: an abort during it is remembered.
		self.update(id, |j| {
			j.state = JobState::Running;
			j.attempts += 1;
		})?;
		let request = self.get(id).context("job")?.request;
		let chain = self.conn.get().await?;
		let out = self.adapters_dir.join(&request.name);
		// Trained before a restart (the folder only appears once complete): reuse it.
		let base_hash = check_base(&chain, self.base_model, &self.base_dir).await?;
		let before = trained_before(&out, &base_hash, &request.snapshots, &request.lora, &request.optim)?;
		let report: FinetuneReport = if let Some(r) = before {
			r
		} else {
			let docs = snapshot_docs(&chain, &request.snapshots, &self.store).await?;
			let me = self.clone();
			let req = request.clone();
			tokio::task::spawn_blocking(move || {
				let progress = |step: usize, total: usize, loss: f64| {
					let mut jobs = me.jobs.lock().expect("not poisoned; qed");
					if let Some(j) = jobs.get_mut(&id) {
						(j.step, j.total_steps, j.loss) = (step, total, Some(loss));
					}
				};
				finetune(&FinetuneSpec {
					base_dir: &me.base_dir,
					base_hash,
					base_model: Some(me.base_model),
					snapshots: &req.snapshots,
					docs: &docs,
					adapters_dir: &me.adapters_dir,
					name: &req.name,
					lora: &req.lora,
					optim: &req.optim,
					device: &candle_core::Device::Cpu,
					progress: &progress,
				})
			})
			.await??
		};
		self.update(id, |j| {
			j.state = JobState::Registering;
			j.report = Some(report.clone());
		})?;
		let uri = format!("store://{}", request.name);
		let model = register_once(&chain, &self.account, self.base_model, &report, &request.license, &uri).await?;
		self.update(id, |j| j.model = Some(model))?;
		if request.serve {
			serve_on(&chain, &self.account, model).await?;
		}
		ensure!(out.exists(), "the adapter folder {} disappeared", out.display());
		Ok(())
	}
}

#[cfg(test)]
mod tests {
	use super::*;

	fn request(json: serde_json::Value) -> Result<JobRequest, String> {
		serde_json::from_value(json).map_err(|e| e.to_string())
	}

	/// Huge knobs are refused before they reach the trainer (a `max_steps` of 10¹⁷ used to be
	/// accepted and abort the worker allocating its loss curve).
	#[test]
	fn hostile_knobs_are_refused() {
		let snap = serde_json::json!([{"datanet": 0, "version": 1, "weight": 1.0}]);
		let ok = request(serde_json::json!({"name": "a", "snapshots": snap})).unwrap();
		assert_eq!(validate(&ok), Ok(()));
		for (optim, what) in [
			(serde_json::json!({"max_steps": 100000000000000000u64}), "--max-steps"),
			(serde_json::json!({"max_steps": 0}), "--max-steps"),
			(serde_json::json!({"epochs": 1000000}), "--epochs"),
			(serde_json::json!({"batch_size": 1000000}), "--batch-size"),
			(serde_json::json!({"max_seq_len": 10000000}), "--max-seq-len"),
			(serde_json::json!({"lr": 1e300}), "--lr"),
			(serde_json::json!({"weight_decay": -1.0}), "--weight-decay"),
			(serde_json::json!({"batch_size": 1024, "max_seq_len": 32768}), "tokens per step"),
		] {
			let r = request(serde_json::json!({"name": "a", "snapshots": snap, "optim": optim})).unwrap();
			let e = validate(&r).unwrap_err();
			assert!(e.contains(what), "{optim}: {e}");
		}
		let r = request(serde_json::json!({"name": "a", "snapshots": snap, "lora": {"rank": 100000}})).unwrap();
		assert!(validate(&r).unwrap_err().contains("--rank"));
		let many: Vec<_> = (0..17).map(|i| serde_json::json!({"datanet": i, "version": 1, "weight": 1.0})).collect();
		let r = request(serde_json::json!({"name": "a", "snapshots": many})).unwrap();
		assert!(validate(&r).unwrap_err().contains("snapshots"));
		let r = request(serde_json::json!({"name": "a", "snapshots": snap, "license": "x".repeat(65)})).unwrap();
		assert!(validate(&r).unwrap_err().contains("license"));
		let r = request(serde_json::json!({"name": "../etc", "snapshots": snap})).unwrap();
		assert!(validate(&r).unwrap_err().contains("name"));
		assert!(request(serde_json::json!({"name": "a", "snapshots": snap, "optim": {"bogus": 1}})).is_err(), "unknown knobs");
	}

	/// A job the worker stopped in is queued again once, then failed for good.
	#[test]
	fn a_job_that_keeps_stopping_the_worker_is_failed_not_restarted() {
		let snap = serde_json::json!([{"datanet": 0, "version": 1, "weight": 1.0}]);
		let mut job = Job {
			id: 1, state: JobState::Running, request: request(serde_json::json!({"name": "a", "snapshots": snap})).unwrap(),
			step: 0, total_steps: 0, loss: None, report: None, model: None, error: None, created: 0, attempts: 1,
		};
		recover(&mut job);
		assert_eq!(job.state, JobState::Queued);
		job.state = JobState::Running;
		job.attempts = MAX_ATTEMPTS;
		recover(&mut job);
		assert_eq!(job.state, JobState::Failed);
		assert!(job.error.as_deref().unwrap().contains("not started again"));
		let mut done = Job { state: JobState::Done, ..job.clone() };
		recover(&mut done);
		assert_eq!(done.state, JobState::Done);
		// Job files written before `attempts` existed still load.
		let mut v = serde_json::to_value(&job).unwrap();
		v.as_object_mut().unwrap().remove("attempts");
		assert_eq!(serde_json::from_value::<Job>(v).unwrap().attempts, 0);
	}
}
