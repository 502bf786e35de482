"""The deploy: the staged output handed to the deployer; on success the artifact is counted and registered, and
the row's fields the version ends with are left for the Finish step."""

from __future__ import annotations

from daemon.core import quotas
from daemon.deployers.base import DeployError, DeployRequest
from daemon.project import staging
from daemon.project.failures import BuildFailed
from daemon.publish import artifacts
from daemon.steps.context import BuildContext


class Deploy:
    """Status `deploying`, then the deployer; DeployError is deploy_failed."""

    name = "deploy"
    timing = "deploy"

    def applies(self, ctx: BuildContext) -> bool:
        return True

    def run(self, ctx: BuildContext) -> None:
        rt, out, tc, base = ctx.rt, ctx.out, ctx.box.tc, ctx.v
        key, zip_path, zip_size = ctx.zip
        framework = base.framework or out.framework
        v = ctx.record(status="deploying", framework=framework, output_size_bytes=out.bytes,
                       node_version=tc.node_version, pnpm_version=tc.pnpm_version)
        try:
            dep = rt.deployer.deploy(DeployRequest(out_dir=out.dir, user_id=v.user_id, project_id=v.project_id,
                                                   version_id=v.version_id, message=v.prompt[:200]), ctx.log.step)
        except DeployError as exc:
            raise BuildFailed("deploy_failed", exc.message) from exc
        ctx.undo.pop_all()  # deployed: the artifact stays
        quotas.note_stored(v.version_id, zip_size)
        artifact_url = artifacts.register_artifact(rt, v, key, zip_path)
        ctx.log.step(f"deployed {dep.deployment_id} at {dep.url} ({dep.state})")
        mono = ctx.layout
        ctx.fields = {
            "framework": framework,
            "preview_url": dep.url,
            "cf_deployment_id": dep.deployment_id if rt.deployer.records_deployment_id else None,
            "deploy_state": dep.state,
            "install_duration_ms": ctx.times.install_ms or None,
            "install_skipped": ctx.times.install_skipped,
            "target_package": mono.target.path if mono.target else None,
            "artifact_url": artifact_url,
        }
        ctx.dist = (staging.root(rt, v.version_id), out.rel)
