# The Gitspaces VM image: stock Debian 12 + images/bake.sh (agent bundle, git, docker.io, docker-compose and,
# optionally, code-server), for GCE (an image in a family) and EC2 (an AMI). See images/README.md.
#
#   packer init images/gitspaces.pkr.hcl
#   packer build -only='googlecompute.debian12' \
#     -var gcp_project_id=my-project -var bundle=dist/gitspaces-agent-0.1.0-linux-x64.tar.gz images/gitspaces.pkr.hcl
#   packer build -only='amazon-ebs.debian12' \
#     -var aws_region=eu-west-1 -var bundle=dist/gitspaces-agent-0.1.0-linux-x64.tar.gz images/gitspaces.pkr.hcl

packer {
  required_plugins {
    googlecompute = {
      source  = "github.com/hashicorp/googlecompute"
      version = "~> 1"
    }
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = "~> 1"
    }
  }
}

variable "bundle" {
  type        = string
  description = "Path of the agent bundle, gitspaces-agent-<version>-linux-<arch>.tar.gz."
  validation {
    condition     = can(regex("^gitspaces-agent-.+-linux-(x64|arm64)\\.tar\\.gz$", basename(var.bundle)))
    error_message = "The bundle must be named gitspaces-agent-<version>-linux-<x64|arm64>.tar.gz."
  }
}

variable "code_server_dir" {
  type        = string
  default     = ""
  description = "A prebuilt code-server directory to bake into /opt/code-server (empty: not baked)."
}

variable "docker" {
  type        = bool
  default     = true
  description = "Install docker.io and docker-compose (dev containers run in them)."
}

variable "image_family" {
  type        = string
  default     = "gitspaces"
  description = "GCE image family of the result (instances can name the family, not the image)."
}

variable "disk_size_gb" {
  type    = number
  default = 20
}

variable "gcp_project_id" {
  type        = string
  default     = ""
  description = "GCP project that builds and keeps the image (googlecompute only)."
}

variable "gcp_zone" {
  type    = string
  default = "us-central1-a"
}

variable "aws_region" {
  type    = string
  default = "us-east-1"
}

locals {
  # gitspaces-agent-<version>-linux-<arch>.tar.gz
  bundle_name = basename(var.bundle)
  version     = regex("^gitspaces-agent-(.+)-linux-(x64|arm64)\\.tar\\.gz$", local.bundle_name)[0]
  arch        = regex("^gitspaces-agent-(.+)-linux-(x64|arm64)\\.tar\\.gz$", local.bundle_name)[1]
  arm         = local.arch == "arm64"
  # GCE names and label values: lower-case letters, digits and dashes.
  version_slug = regex_replace(lower(local.version), "[^a-z0-9-]", "-")
  image_name   = "gitspaces-${local.version_slug}-${formatdate("YYYYMMDDhhmmss", timestamp())}"
  upload       = "/tmp/gitspaces-bake"
  bake_args = concat(
    ["--bundle", "${local.upload}/${local.bundle_name}"],
    var.code_server_dir == "" ? [] : ["--code-server", "${local.upload}/${basename(trimsuffix(var.code_server_dir, "/"))}"],
    var.docker ? [] : ["--no-docker"],
  )
}

source "googlecompute" "debian12" {
  project_id              = var.gcp_project_id
  zone                    = var.gcp_zone
  source_image_family     = local.arm ? "debian-12-arm64" : "debian-12"
  source_image_project_id = ["debian-cloud"]
  machine_type            = local.arm ? "t2a-standard-2" : "e2-standard-2"
  disk_size               = var.disk_size_gb
  ssh_username            = "packer"
  image_name              = local.image_name
  image_family            = var.image_family
  image_description       = "Gitspaces VM image: Debian 12 + gitspaces-agent ${local.version}"
  image_labels = {
    gitspaces-agent = local.version_slug
  }
}

source "amazon-ebs" "debian12" {
  region        = var.aws_region
  instance_type = local.arm ? "t4g.medium" : "t3.medium"
  source_ami_filter {
    filters = {
      name                = "debian-12-${local.arm ? "arm64" : "amd64"}-*"
      architecture        = local.arm ? "arm64" : "x86_64"
      root-device-type    = "ebs"
      virtualization-type = "hvm"
    }
    owners      = ["136693071363"] # Debian's official AMIs
    most_recent = true
  }
  ssh_username    = "admin"
  ami_name        = local.image_name
  ami_description = "Gitspaces VM image: Debian 12 + gitspaces-agent ${local.version}"
  imds_support    = "v2.0"
  launch_block_device_mappings {
    device_name           = "/dev/xvda"
    volume_size           = var.disk_size_gb
    volume_type           = "gp3"
    delete_on_termination = true
  }
  tags = {
    Name                      = local.image_name
    "gitspaces:agent-version" = local.version
  }
}

build {
  sources = ["source.googlecompute.debian12", "source.amazon-ebs.debian12"]

  # The file provisioner needs the destination directory to exist.
  provisioner "shell" {
    inline = ["mkdir -p ${local.upload}"]
  }

  provisioner "file" {
    sources = concat(
      [var.bundle, "${path.root}/bake.sh"],
      var.code_server_dir == "" ? [] : [trimsuffix(var.code_server_dir, "/")],
    )
    destination = "${local.upload}/"
  }

  # The same recipe the tests bake into their container image (scripts/vm-images.sh baked).
  provisioner "shell" {
    inline = [
      "sudo -n bash ${local.upload}/bake.sh ${join(" ", local.bake_args)}",
      "sudo -n rm -rf ${local.upload}",
    ]
  }
}
